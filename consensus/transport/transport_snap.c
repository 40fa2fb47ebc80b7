/*
 * transport_snap.c - snapshot streams, on a connection of their own so that
 * heartbeats and appends on the message connection never queue behind
 * megabytes of snapshot data.
 *
 * Sending, happy path: dial (channel 2), handshake, write SNAP_BEGIN with
 * the metadata; then repeat: read the next chunk of the file in libuv's
 * thread pool (uv_fs_read at an offset: the loop never touches the disk),
 * write it as SNAP_CHUNK, and only when that write has completed read the
 * next one. One chunk buffer, so memory per stream is one chunk and TCP's
 * own flow control paces us. Then SNAP_END with the byte count and the
 * CRC-32C of all data, and wait for the receiver's SNAP_ACK. A stall timer
 * (snap_stall_ms) restarts at every step.
 *
 * Sending, failures: dial or handshake failure, a read error or short file
 * (ERR_TRUNCATED), a write error, a stall (-ETIMEDOUT), a negative ACK
 * (ERR_CORRUPT or -EACCES), cancellation by peer removal or transport close
 * (ERR_CANCELED). The first failure decides the status. done runs exactly
 * once, when both the connection's handles have closed and no file read is
 * in flight, so nothing can touch the stream after its callback.
 *
 * Receiving: BEGIN, CHUNKs and END are handed to snap_cb as they arrive; the
 * owner may pause the stream from its callback (we stop reading, TCP pushes
 * back on the sender) while it writes the chunk to disk off the loop, and
 * resume when done. END is delivered only after the count and checksum
 * matched; otherwise ABORT with ERR_CORRUPT. A stream cut short gets ABORT
 * when its connection is gone, so every BEGIN sees exactly one END or ABORT.
 */
#include "consensus/transport/transport_int.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "base/log.h"

static void on_snap_written(uv_write_t *req, int status);
static void snap_release(struct transport__snap_send *s);

static void snap_free(struct transport__snap_send *s)
{
    mem_free(s->meta);
    mem_free(s->chunk);
    mem_free(s);
}

static int snap_alloc(struct transport *t, const void *meta, size_t meta_len,
                      struct transport__snap_send **out)
{
    struct transport__snap_send *s = mem_calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->meta = mem_alloc(TRANSPORT_FRAME_HEADER_BYTES + meta_len);
    s->chunk =
        mem_alloc(TRANSPORT_FRAME_HEADER_BYTES + t->cfg.snapshot_chunk_bytes);
    if (s->meta == NULL || s->chunk == NULL) {
        snap_free(s);
        return -ENOMEM;
    }
    if (meta_len > 0) {
        memcpy(s->meta + TRANSPORT_FRAME_HEADER_BYTES, meta, meta_len);
    }
    s->meta_len = meta_len;
    s->t = t;
    s->status = 1;
    s->wreq.data = s;
    s->fs.data = s;
    *out = s;
    return 0;
}

int transport_send_snapshot(struct transport *t, uint64_t to, const void *meta,
                            size_t meta_len, uv_file fd, int64_t offset,
                            uint64_t len, transport_send_snapshot_done_cb done,
                            void *arg)
{
    struct transport__snap_send *s;
    struct transport__conn *c;
    if (t->closing) {
        return -ESHUTDOWN;
    }
    if (done == NULL || fd < 0 || offset < 0 ||
        (meta == NULL && meta_len > 0)) {
        return ERR_INVALID;
    }
    struct transport__peer *p = tr__peer_find(t, to);
    if (p == NULL) {
        return ERR_NOT_FOUND;
    }
    if (meta_len > t->cfg.max_msg_bytes) {
        return ERR_LIMIT;
    }
    if (p->snap != NULL) {
        return ERR_BUSY;
    }
    int rc = snap_alloc(t, meta, meta_len, &s);
    if (rc != 0) {
        return rc;
    }
    rc = tr__conn_new(t, TR_CONN_OUT_SNAP, &c);
    if (rc != 0) {
        snap_free(s);
        return rc;
    }
    s->to = to;
    s->fd = fd;
    s->offset = offset;
    s->len = len;
    s->done = done;
    s->arg = arg;
    s->conn = c;
    c->snap = s;
    c->peer = p;
    c->peer_id = to;
    snprintf(c->remote, sizeof(c->remote), "%s", p->addr_text);
    t->snaps_live++;
    rc = tr__conn_dial(c, (const struct sockaddr *)&p->addr);
    if (rc != 0) {
        /* The connection's handles still need closing; the stream goes with
         * them, without running done (this call fails). */
        s->silent = true;
        s->status = rc;
        tr__conn_close(c, rc);
        return rc;
    }
    s->peer = p;
    p->snap = s;
    return 0;
}

static void snap_write(struct transport__conn *c, uint8_t *frame, size_t len)
{
    struct transport__snap_send *s = c->snap;
    uv_buf_t b;
    b.base = (char *)frame;
    b.len = len;
    int rc = tr__io_write(c, &s->wreq, &b, 1, on_snap_written);
    if (rc != 0) {
        tr__snap_out_failed(c, rc);
        return;
    }
    tr__conn_timer_start(c, c->t->cfg.snap_stall_ms);
}

/* The handshake was accepted: send the metadata. */
void tr__snap_out_ready(struct transport__conn *c)
{
    struct transport__snap_send *s = c->snap;
    ASSERT(s != NULL && s->conn == c);
    tr__frame_encode(s->meta, TRANSPORT_FRAME_SNAP_BEGIN,
                     s->meta + TRANSPORT_FRAME_HEADER_BYTES, s->meta_len);
    snap_write(c, s->meta, TRANSPORT_FRAME_HEADER_BYTES + s->meta_len);
}

static void on_fs_read(uv_fs_t *req)
{
    struct transport__snap_send *s = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    s->fs_busy = false;
    struct transport__conn *c = s->conn;
    if (c == NULL || c->state == TR_CLOSING) {
        snap_release(s);
        return;
    }
    if (n <= 0) {
        tr__snap_out_failed(c, n == 0 ? ERR_TRUNCATED : (int)n);
        return;
    }
    size_t got = (size_t)n;
    ASSERT(got <= c->t->cfg.snapshot_chunk_bytes);
    ASSERT(got <= s->len - s->sent);
    uint8_t *data = s->chunk + TRANSPORT_FRAME_HEADER_BYTES;
    s->crc = crc32c(s->crc, data, got);
    s->sent += got;
    tr__frame_encode(s->chunk, TRANSPORT_FRAME_SNAP_CHUNK, data, got);
    snap_write(c, s->chunk, TRANSPORT_FRAME_HEADER_BYTES + got);
}

/* Read the next chunk, or write END when all data went out. */
static void snap_next(struct transport__conn *c)
{
    struct transport__snap_send *s = c->snap;
    ASSERT(s->sent <= s->len);
    if (s->sent == s->len) {
        uint8_t *p = s->end + TRANSPORT_FRAME_HEADER_BYTES;
        be64_put(p, s->len);
        be32_put(p + 8, s->crc);
        tr__frame_encode(s->end, TRANSPORT_FRAME_SNAP_END, p,
                         TRANSPORT_SNAP_END_BYTES);
        s->end_sent = true;
        snap_write(c, s->end, sizeof(s->end));
        return;
    }
    uint64_t n = s->len - s->sent;
    if (n > c->t->cfg.snapshot_chunk_bytes) {
        n = c->t->cfg.snapshot_chunk_bytes;
    }
    uv_buf_t b;
    b.base = (char *)s->chunk + TRANSPORT_FRAME_HEADER_BYTES;
    b.len = (size_t)n;
    int rc = uv_fs_read(c->t->loop, &s->fs, s->fd, &b, 1,
                        s->offset + (int64_t)s->sent, on_fs_read);
    if (rc != 0) {
        tr__snap_out_failed(c, rc);
        return;
    }
    s->fs_busy = true;
}

static void on_snap_written(uv_write_t *req, int status)
{
    struct transport__snap_send *s = req->data;
    struct transport__conn *c = s->conn;
    ASSERT(c != NULL); /* the connection outlives its write requests */
    if (c->state == TR_CLOSING) {
        return;
    }
    if (status < 0) {
        tr__snap_out_failed(c, status);
        return;
    }
    if (!s->end_sent) {
        snap_next(c);
    }
    /* After END: the stall timer runs until the ACK arrives. */
}

/* The receiver's verdict. */
void tr__snap_out_frame(struct transport__conn *c, uint8_t type,
                        const uint8_t *payload, size_t len)
{
    struct transport__snap_send *s = c->snap;
    ASSERT(type == TRANSPORT_FRAME_SNAP_ACK && len == 1);
    ASSERT(s != NULL && s->end_sent);
    if (payload[0] == TRANSPORT_SNAP_ACK_OK) {
        if (s->status == 1) {
            s->status = 0;
        }
        if (c->peer != NULL) {
            c->peer->st.snapshots_sent++;
        }
        LOGI(TR_LOG, "snapshot of %" PRIu64 " bytes sent to member %016" PRIx64,
             s->len, s->to);
        tr__conn_close(c, 0);
        return;
    }
    int err = payload[0] == TRANSPORT_SNAP_ACK_CORRUPT ? ERR_CORRUPT : -EACCES;
    LOGW(TR_LOG, "member %016" PRIx64 " rejected our snapshot: %s", s->to,
         err_str(err));
    tr__snap_out_failed(c, err);
}

void tr__snap_out_failed(struct transport__conn *c, int err)
{
    struct transport__snap_send *s = c->snap;
    ASSERT(s != NULL);
    ASSERT(err < 0);
    if (s->status == 1) {
        s->status = err;
        LOGW(TR_LOG, "snapshot to member %016" PRIx64 " failed: %s", s->to,
             err_str(err));
    }
    if (s->fs_busy) {
        uv_cancel((uv_req_t *)&s->fs); /* may fail if running: fine */
    }
    tr__conn_close(c, err);
}

void tr__snap_cancel(struct transport__snap_send *s)
{
    if (s->status == 1) {
        s->status = ERR_CANCELED;
    }
    if (s->fs_busy) {
        uv_cancel((uv_req_t *)&s->fs);
    }
    if (s->conn != NULL) {
        tr__conn_close(s->conn, ERR_CANCELED);
    }
}

void tr__snap_out_conn_gone(struct transport__conn *c)
{
    struct transport__snap_send *s = c->snap;
    ASSERT(s != NULL && s->conn == c);
    s->conn = NULL;
    c->snap = NULL;
    snap_release(s);
}

/* Run done once nothing of the stream is left in flight. */
static void snap_release(struct transport__snap_send *s)
{
    struct transport *t = s->t;
    if (s->conn != NULL || s->fs_busy) {
        return;
    }
    if (s->peer != NULL) {
        ASSERT(s->peer->snap == s);
        s->peer->snap = NULL;
        s->peer = NULL;
    }
    ASSERT(t->snaps_live > 0);
    t->snaps_live--;
    int status = s->status == 1 ? ERR_CANCELED : s->status;
    if (t->closing && status != 0) {
        status = ERR_CANCELED;
    }
    if (!s->silent) {
        s->done(s->arg, s->to, status);
    }
    snap_free(s);
    tr__maybe_finish_close(t);
}

/* --- receiving ------------------------------------------------------ */

static void snap_in_event(struct transport__conn *c,
                          enum transport_snap_event ev, const uint8_t *p,
                          size_t len, int status)
{
    struct transport *t = c->t;
    t->cfg.snap_cb(t->cfg.owner, (struct transport_snap_in *)c, c->peer_id, ev,
                   p, len, status);
}

static void snap_in_end(struct transport__conn *c, const uint8_t *payload)
{
    uint64_t total = be64_get(payload);
    uint32_t crc = be32_get(payload + 8);
    bool ok = total == c->rx_bytes && crc == c->rx_crc;
    uint8_t ack = ok ? TRANSPORT_SNAP_ACK_OK : TRANSPORT_SNAP_ACK_CORRUPT;
    c->rx_ended = true;
    c->state = TR_DONE;
    tr__conn_read_stop(c);
    if (c->peer == NULL) {
        c->peer = tr__peer_find(c->t, c->peer_id);
    }
    if (ok && c->peer != NULL) {
        c->peer->st.snapshots_received++;
    }
    if (!ok) {
        c->t->stats.frames_malformed++;
        LOGW(TR_LOG,
             "snapshot from member %016" PRIx64 " is corrupt: %" PRIu64
             " bytes, crc %08" PRIx32 ", expected %" PRIu64 " and %08" PRIx32,
             c->peer_id, c->rx_bytes, c->rx_crc, total, crc);
    }
    /* The ACK goes first: the owner may close the transport from its
     * callback, and the sender should still hear the verdict. */
    tr__conn_write_control_frame(c, TRANSPORT_FRAME_SNAP_ACK, &ack, 1, true);
    snap_in_event(c, ok ? TRANSPORT_SNAP_END : TRANSPORT_SNAP_ABORT, NULL, 0,
                  ok ? 0 : ERR_CORRUPT);
}

void tr__snap_in_frame(struct transport__conn *c, uint8_t type,
                       const uint8_t *payload, size_t len)
{
    ASSERT(c->kind == TR_CONN_IN && c->channel == TRANSPORT_CHANNEL_SNAP);
    ASSERT(!c->rx_ended);
    switch (type) {
    case TRANSPORT_FRAME_SNAP_BEGIN:
        ASSERT(!c->rx_begun);
        c->rx_begun = true;
        c->rx_bytes = 0;
        c->rx_crc = 0;
        snap_in_event(c, TRANSPORT_SNAP_BEGIN, payload, len, 0);
        break;
    case TRANSPORT_FRAME_SNAP_CHUNK:
        ASSERT(c->rx_begun);
        c->rx_crc = crc32c(c->rx_crc, payload, len);
        c->rx_bytes += len;
        snap_in_event(c, TRANSPORT_SNAP_CHUNK, payload, len, 0);
        break;
    case TRANSPORT_FRAME_SNAP_END:
        ASSERT(c->rx_begun && len == TRANSPORT_SNAP_END_BYTES);
        snap_in_end(c, payload);
        break;
    default:
        UNREACHABLE(); /* tr__frame_allowed let only these through */
    }
}

/* The incoming connection is gone: ABORT an unfinished stream. */
void tr__snap_in_gone(struct transport__conn *c)
{
    if (c->channel != TRANSPORT_CHANNEL_SNAP || !c->rx_begun || c->rx_ended) {
        return;
    }
    c->rx_ended = true;
    int status = c->err < 0 ? c->err : -ECONNRESET;
    if (c->t->closing) {
        status = ERR_CANCELED;
    }
    snap_in_event(c, TRANSPORT_SNAP_ABORT, NULL, 0, status);
}

void transport_snapshot_pause(struct transport_snap_in *in)
{
    struct transport__conn *c = (struct transport__conn *)in;
    ASSERT(c != NULL && c->kind == TR_CONN_IN);
    if (c->state == TR_CLOSING || c->paused) {
        return;
    }
    c->paused = true;
    tr__conn_read_stop(c);
}

void transport_snapshot_resume(struct transport_snap_in *in)
{
    struct transport__conn *c = (struct transport__conn *)in;
    ASSERT(c != NULL && c->kind == TR_CONN_IN);
    if (c->state == TR_CLOSING || !c->paused) {
        return;
    }
    c->paused = false;
    tr__conn_kick(c);
}
