/*
 * rtcp_fuzz.c — libFuzzer target for the RTCP parsers (rtcp.c): compound
 * iteration and every per-type parser on every packet, whatever its type.
 *
 * Invariants (trap on violation): packets located by mc_rtcp_next lie inside
 * the input and tile it; item/reason offsets lie inside their packet; a
 * parsed NACK re-packed with mc_rtcp_write_nack and parsed again yields the
 * same set of sequence numbers; a parsed SR/RR re-written parses identically;
 * a parsed APP lies inside its packet and re-written parses identically; a
 * compound that mc_rtcp_check_compound accepts is tiled by mc_rtcp_next and
 * every packet of a type it checks parses.
 *
 * Build and run: the `fuzz-rtcp` target in the Makefile (seeded from
 * native/fuzz/corpus/rtcp).
 */
#include <stdlib.h>
#include <string.h>

#include "mediacore.h"

static uint8_t buf[300000];
static uint16_t lost[1 << 15], lost2[1 << 15];

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static uint32_t sorted_unique(uint16_t *v, uint32_t n)
{
    qsort(v, n, sizeof v[0], cmp_u16);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (k == 0 || v[k - 1] != v[i])
            v[k++] = v[i];
    return k;
}

static void per_packet(const uint8_t *d, size_t n)
{
    mc_rtcp_sender_info si;
    mc_rtcp_report_block blocks[31], back[31];
    uint32_t count, count2, ssrc, a, b, off, len, cursor = 0;
    uint8_t type;
    if (mc_rtcp_parse_sr(d, n, &si, blocks, 31, &count) == MC_OK) {
        size_t used = 0;
        if (count > 31 || mc_rtcp_write_sr(buf, sizeof buf, &used, &si, blocks, count) != MC_OK ||
            mc_rtcp_parse_sr(buf, used, &si, back, 31, &count2) != MC_OK || count2 != count)
            __builtin_trap();
        for (uint32_t i = 0; i < count; i++)
            if (back[i].cumulative_lost != blocks[i].cumulative_lost ||
                back[i].dlsr != blocks[i].dlsr)
                __builtin_trap();
    }
    if (mc_rtcp_parse_rr(d, n, &ssrc, blocks, 31, &count) == MC_OK && count > 31)
        __builtin_trap();
    for (int i = 0; i < 64; i++) {
        if (mc_rtcp_sdes_next(d, n, &cursor, &ssrc, &type, &off, &len) != MC_OK)
            break;
        if ((size_t)off + len > n)
            __builtin_trap();
    }
    uint32_t ssrcs[31];
    if (mc_rtcp_parse_bye(d, n, ssrcs, 31, &count, &off, &len) == MC_OK && (size_t)off + len > n)
        __builtin_trap();
    if (mc_rtcp_parse_nack(d, n, &a, &b, lost, 1 << 15, &count) == MC_OK && count <= 1024 &&
        count > 0) {
        size_t used = 0;
        if (mc_rtcp_write_nack(buf, sizeof buf, &used, a, b, lost, count) != MC_OK)
            __builtin_trap();
        if (mc_rtcp_parse_nack(buf, used, &a, &b, lost2, 1 << 15, &count2) != MC_OK)
            __builtin_trap();
        uint32_t u1 = sorted_unique(lost, count), u2 = sorted_unique(lost2, count2);
        if (u1 != u2 || memcmp(lost, lost2, u1 * sizeof lost[0]) != 0)
            __builtin_trap();
    }
    uint8_t name[4], name2[4];
    uint32_t sub, sub2, ssrc2;
    if (mc_rtcp_parse_app(d, n, &ssrc, name, &sub, &off, &len) == MC_OK) {
        size_t used = 0;
        if ((size_t)off + len > n || len % 4 != 0 || sub > 31 ||
            mc_rtcp_write_app(buf, sizeof buf, &used, ssrc, name, sub, d + off, len) != MC_OK ||
            mc_rtcp_parse_app(buf, used, &ssrc2, name2, &sub2, &a, &b) != MC_OK || b != len ||
            ssrc2 != ssrc || sub2 != sub || memcmp(name, name2, 4) != 0 ||
            memcmp(buf + a, d + off, len) != 0)
            __builtin_trap();
    }
    mc_rtcp_parse_pli(d, n, &a, &b);
    uint8_t seqs[64];
    mc_rtcp_parse_fir(d, n, &a, ssrcs, seqs, 31, &count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = (uint8_t *)malloc(size ? size : 1);
    memcpy(copy, data, size);
    uint32_t cursor = 0, expect = 0;
    mc_rtcp_packet p;
    for (;;) {
        mc_status st = mc_rtcp_next(copy, size, &cursor, &p);
        if (st != MC_OK)
            break;
        if (p.offset != expect || (size_t)p.offset + p.length > size || p.length < 4)
            __builtin_trap();
        expect = p.offset + p.length;
        per_packet(copy + p.offset, p.length);
    }
    per_packet(copy, size); /* the parsers also see unframed bytes */
    uint32_t problem = 0;
    if (mc_rtcp_check_compound(copy, size, &problem) == MC_OK) {
        /* valid: the packets tile the input and the checked types parse */
        cursor = 0;
        expect = 0;
        while (mc_rtcp_next(copy, size, &cursor, &p) == MC_OK) {
            const uint8_t *d = copy + p.offset;
            mc_rtcp_sender_info si;
            mc_rtcp_report_block blk[1];
            uint32_t n1, n2, n3;
            uint8_t nm[4];
            if (p.offset != expect ||
                (p.packet_type == MC_RTCP_SR && mc_rtcp_parse_sr(d, p.length, &si, blk, 1, &n1)) ||
                (p.packet_type == MC_RTCP_RR && mc_rtcp_parse_rr(d, p.length, &n1, blk, 1, &n2)) ||
                (p.packet_type == MC_RTCP_APP &&
                 mc_rtcp_parse_app(d, p.length, &n1, nm, &n2, &n3, &n3)))
                __builtin_trap();
            expect = p.offset + p.length;
        }
        if (expect != size || problem != MC_RTCP_VALID)
            __builtin_trap();
    } else if (problem == MC_RTCP_VALID || problem > MC_RTCP_BAD_PACKET) {
        __builtin_trap();
    }
    free(copy);
    return 0;
}
