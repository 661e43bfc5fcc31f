/*
 * gst_dtmf_sender.c — an independent RFC 4733 peer for the DTMF interop test
 * (tests/mediacore/audio/test_dtmf_interop.py): GStreamer's rtpdtmfsrc
 * sending to a UDP port, driven by "dtmf-event" upstream events exactly as
 * an application (e.g. a SIP client) does.
 *
 * Built by the test with: gcc gst_dtmf_sender.c $(pkg-config --cflags --libs gstreamer-1.0)
 *
 * usage: gst_dtmf_sender HOST PORT SSRC PT CLOCK_RATE DIGITS TONE_MS GAP_MS
 * Prints one line per digit sent ("sent D") and exits 0 once every digit's
 * end packets (E bit, sent packet-redundancy times) have gone to udpsink:
 * the last digit has no next digit to end it at the receiver, and a fixed
 * wait before tearing the pipeline down lost them on a loaded machine.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int event_number(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c == '*')
        return 10;
    if (c == '#')
        return 11;
    if (c >= 'A' && c <= 'D')
        return 12 + (c - 'A');
    return -1;
}

static gint end_packets; /* RTP packets with the E bit, seen going into udpsink */

static GstPadProbeReturn count_end_packets(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
    (void)pad;
    (void)data;
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    GstMapInfo map;
    if (buf && gst_buffer_map(buf, &map, GST_MAP_READ)) {
        /* RFC 3550 header (rtpdtmfsrc: no CSRC, no extension), then RFC 4733:
         * event, E|R|volume, duration */
        gsize header = 12 + 4 * (gsize)(map.size ? map.data[0] & 0x0f : 0);
        if (map.size >= header + 4 && (map.data[header + 1] & 0x80))
            g_atomic_int_inc(&end_packets);
        gst_buffer_unmap(buf, &map);
    }
    return GST_PAD_PROBE_OK;
}

static gboolean send_dtmf(GstElement *src, gboolean start, int number)
{
    GstStructure *s;
    if (start)
        s = gst_structure_new("dtmf-event", "type", G_TYPE_INT, 1, "number", G_TYPE_INT, number,
                              "volume", G_TYPE_INT, 10, "start", G_TYPE_BOOLEAN, TRUE, NULL);
    else
        s = gst_structure_new("dtmf-event", "type", G_TYPE_INT, 1, "start", G_TYPE_BOOLEAN, FALSE,
                              NULL);
    return gst_element_send_event(src, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM, s));
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT SSRC PT CLOCK_RATE DIGITS TONE_MS GAP_MS\n", argv[0]);
        return 2;
    }
    gst_init(NULL, NULL);
    const char *digits = argv[6];
    int tone_ms = atoi(argv[7]), gap_ms = atoi(argv[8]);
    GstElement *pipe = gst_pipeline_new("dtmf");
    GstElement *src = gst_element_factory_make("rtpdtmfsrc", "src");
    GstElement *sink = gst_element_factory_make("udpsink", "sink");
    if (!pipe || !src || !sink) {
        fprintf(stderr, "rtpdtmfsrc or udpsink missing (gstreamer1.0-plugins-good)\n");
        return 3;
    }
    g_object_set(src, "ssrc", (guint)strtoul(argv[3], NULL, 0), "pt", (guint)atoi(argv[4]),
                 "clock-rate", (guint)atoi(argv[5]), "packet-redundancy", 3u, NULL);
    g_object_set(sink, "host", argv[1], "port", atoi(argv[2]), "sync", FALSE, "async", FALSE,
                 NULL);
    gst_bin_add_many(GST_BIN(pipe), src, sink, NULL);
    GstPad *sink_pad = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(sink_pad, GST_PAD_PROBE_TYPE_BUFFER, count_end_packets, NULL, NULL);
    gst_object_unref(sink_pad);
    if (!gst_element_link(src, sink)) {
        fprintf(stderr, "link failed\n");
        return 4;
    }
    if (gst_element_set_state(pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        fprintf(stderr, "cannot start the pipeline\n");
        return 5;
    }
    g_usleep(200 * 1000);
    for (const char *p = digits; *p; p++) {
        int n = event_number(*p);
        if (n < 0) {
            fprintf(stderr, "bad digit %c\n", *p);
            return 6;
        }
        if (!send_dtmf(pipe, TRUE, n)) {
            fprintf(stderr, "start event refused\n");
            return 7;
        }
        g_usleep((gulong)tone_ms * 1000);
        if (!send_dtmf(pipe, FALSE, 0)) {
            fprintf(stderr, "stop event refused\n");
            return 7;
        }
        printf("sent %c\n", *p);
        fflush(stdout);
        g_usleep((gulong)gap_ms * 1000);
    }
    /* every digit's end packets into udpsink (up to 10 s), then a moment to send them */
    gint want = 3 * (gint)strlen(digits);
    for (int waited = 0; g_atomic_int_get(&end_packets) < want; waited += 10) {
        if (waited >= 10000) {
            fprintf(stderr, "only %d of %d end packets were sent\n", g_atomic_int_get(&end_packets),
                    want);
            return 8;
        }
        g_usleep(10 * 1000);
    }
    g_usleep(100 * 1000);
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(pipe);
    return 0;
}
