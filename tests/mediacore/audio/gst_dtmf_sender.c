/*
 * gst_dtmf_sender.c — an independent RFC 4733 peer for the DTMF interop test
 * (tests/mediacore/audio/test_dtmf_interop.py): GStreamer's rtpdtmfsrc
 * sending to a UDP port, driven by "dtmf-event" upstream events exactly as
 * an application (e.g. a SIP client) does.
 *
 * Built by the test with: gcc gst_dtmf_sender.c $(pkg-config --cflags --libs gstreamer-1.0)
 *
 * usage: gst_dtmf_sender HOST PORT SSRC PT CLOCK_RATE DIGITS TONE_MS GAP_MS
 * Prints one line per digit sent ("sent D") and exits 0 when done.
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
    g_usleep(200 * 1000);
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(pipe);
    return 0;
}
