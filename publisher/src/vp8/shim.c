/* A thin C layer over libvpx's VP8 encoder and decoder for the Rust side (vp8/mod.rs).
 *
 * libvpx's structs (vpx_codec_ctx_t, vpx_codec_enc_cfg_t, vpx_image_t) have an ABI-versioned
 * layout that Rust would have to mirror exactly; here they stay behind opaque handles and
 * plain functions taking ints, pointers and lengths, so only this file sees them and the
 * headers of the installed libvpx decide their layout.
 *
 * Return codes: 0 success, negative failure (the message is in the handle, see *_error).
 * Nothing here keeps a pointer handed in by the caller beyond the call. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vpx/vp8cx.h>
#include <vpx/vp8dx.h>
#include <vpx/vpx_decoder.h>
#include <vpx/vpx_encoder.h>

#define SL_ERRLEN 256

/* Write "what: libvpx's message (detail)" into err. */
static void sl_set_error(char *err, size_t errlen, const char *what, vpx_codec_ctx_t *ctx) {
    if (err == NULL || errlen == 0) {
        return;
    }
    if (ctx == NULL) {
        snprintf(err, errlen, "%s", what);
        return;
    }
    const char *msg = vpx_codec_error(ctx);
    const char *detail = vpx_codec_error_detail(ctx);
    if (detail != NULL && detail[0] != '\0') {
        snprintf(err, errlen, "%s: %s (%s)", what, msg ? msg : "?", detail);
    } else {
        snprintf(err, errlen, "%s: %s", what, msg ? msg : "?");
    }
}

/* ---------------------------------------------------------------- encoder */

typedef struct sl_vp8_enc {
    vpx_codec_ctx_t ctx;
    /* Kept so set_bitrate can change one field and hand the whole config back. */
    vpx_codec_enc_cfg_t cfg;
    int width;
    int height;
    /* The compressed frame of the last encode call, owned here and grown as needed: the
     * packets must be taken from libvpx before the next call, so they cannot wait for a
     * caller to come back with a bigger buffer. */
    uint8_t *buf;
    size_t len;
    size_t cap;
    char err[SL_ERRLEN];
} sl_vp8_enc;

sl_vp8_enc *sl_vp8_enc_new(int width, int height, int fps, int bitrate_kbps, char *err,
                           int errlen) {
    size_t elen = errlen > 0 ? (size_t)errlen : 0;
    if (width <= 0 || height <= 0 || fps <= 0 || bitrate_kbps <= 0) {
        sl_set_error(err, elen, "vp8 encoder: size, fps and bitrate must be positive", NULL);
        return NULL;
    }
    sl_vp8_enc *enc = calloc(1, sizeof *enc);
    if (enc == NULL) {
        sl_set_error(err, elen, "vp8 encoder: out of memory", NULL);
        return NULL;
    }
    vpx_codec_iface_t *iface = vpx_codec_vp8_cx();
    if (vpx_codec_enc_config_default(iface, &enc->cfg, 0) != VPX_CODEC_OK) {
        sl_set_error(err, elen, "vp8 encoder: no default configuration", NULL);
        free(enc);
        return NULL;
    }
    vpx_codec_enc_cfg_t *cfg = &enc->cfg;
    cfg->g_w = (unsigned int)width;
    cfg->g_h = (unsigned int)height;
    /* The RTP video clock: pts and durations come in 1/90000 s, so a frame rate change
     * later needs no new time base. */
    cfg->g_timebase.num = 1;
    cfg->g_timebase.den = 90000;
    /* One thread. libvpx's VP8 row threads wait for each other by spinning: on a machine
     * whose cores are busy (a small device also encoding H.264, a shared host) a second
     * thread made 720p 3 to 10 times slower and erratic (50 to 180 ms a frame instead of
     * 15 to 18 ms, measured on 2 loaded cores), and one thread keeps the CPU predictable. */
    cfg->g_threads = 1;
    cfg->g_pass = VPX_RC_ONE_PASS;
    /* Live video: every frame out as soon as it goes in. */
    cfg->g_lag_in_frames = 0;
    /* Frames decodable after a lost one as far as VP8 allows (no reliance on entropy
     * contexts carried across frames). */
    cfg->g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
    cfg->rc_end_usage = VPX_CBR;
    cfg->rc_target_bitrate = (unsigned int)bitrate_kbps;
    /* A dropped frame is a frame viewers never get; overshoot is the lesser evil (as with
     * the H.264 encoder's skip_frames(false)). */
    cfg->rc_dropframe_thresh = 0;
    cfg->rc_min_quantizer = 2;
    cfg->rc_max_quantizer = 56;
    cfg->rc_undershoot_pct = 100;
    cfg->rc_overshoot_pct = 15;
    /* Buffer model in milliseconds: small, for low latency. */
    cfg->rc_buf_initial_sz = 500;
    cfg->rc_buf_optimal_sz = 600;
    cfg->rc_buf_sz = 1000;
    /* Keyframes come on request (PLI/FIR, new viewers); the automatic ones only at very
     * long intervals or when libvpx finds a scene cut. */
    cfg->kf_mode = VPX_KF_AUTO;
    cfg->kf_min_dist = 0;
    cfg->kf_max_dist = 999999;
    (void)fps; /* the frame rate lives in the durations handed to encode */

    if (vpx_codec_enc_init(&enc->ctx, iface, cfg, 0) != VPX_CODEC_OK) {
        sl_set_error(err, elen, "vp8 encoder: init failed", &enc->ctx);
        free(enc);
        return NULL;
    }
    /* Speed 6 of 16 on the realtime path: fast, still decent quality. */
    if (vpx_codec_control(&enc->ctx, VP8E_SET_CPUUSED, -6) != VPX_CODEC_OK ||
        vpx_codec_control(&enc->ctx, VP8E_SET_NOISE_SENSITIVITY, 0u) != VPX_CODEC_OK ||
        vpx_codec_control(&enc->ctx, VP8E_SET_STATIC_THRESHOLD, 1u) != VPX_CODEC_OK ||
        /* Keyframes at most 3x an average frame: a huge one stalls the stream. */
        vpx_codec_control(&enc->ctx, VP8E_SET_MAX_INTRA_BITRATE_PCT, 300u) != VPX_CODEC_OK) {
        sl_set_error(err, elen, "vp8 encoder: setting controls failed", &enc->ctx);
        vpx_codec_destroy(&enc->ctx);
        free(enc);
        return NULL;
    }
    enc->width = width;
    enc->height = height;
    return enc;
}

const char *sl_vp8_enc_error(const sl_vp8_enc *enc) {
    return enc != NULL ? enc->err : "vp8 encoder: no encoder";
}

int sl_vp8_enc_set_bitrate(sl_vp8_enc *enc, int kbps) {
    if (enc == NULL || kbps <= 0) {
        return -1;
    }
    unsigned int old = enc->cfg.rc_target_bitrate;
    enc->cfg.rc_target_bitrate = (unsigned int)kbps;
    if (vpx_codec_enc_config_set(&enc->ctx, &enc->cfg) != VPX_CODEC_OK) {
        enc->cfg.rc_target_bitrate = old;
        sl_set_error(enc->err, sizeof enc->err, "vp8 encoder: changing the bitrate failed",
                     &enc->ctx);
        return -1;
    }
    return 0;
}

/* Append n bytes to the output buffer, growing it. */
static int sl_append(sl_vp8_enc *enc, const void *data, size_t n) {
    if (n > SIZE_MAX - enc->len) {
        return -1;
    }
    size_t need = enc->len + n;
    if (need > enc->cap) {
        size_t cap = enc->cap ? enc->cap : 64 * 1024;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) {
                cap = need;
                break;
            }
            cap *= 2;
        }
        uint8_t *grown = realloc(enc->buf, cap);
        if (grown == NULL) {
            return -1;
        }
        enc->buf = grown;
        enc->cap = cap;
    }
    memcpy(enc->buf + enc->len, data, n);
    enc->len = need;
    return 0;
}

/* Encode one I420 picture of the encoder's size. On success *out and *out_len describe the
 * compressed frame (zero length: libvpx produced nothing), valid until the next call or
 * free; *is_keyframe says whether it is one. The planes are only read. */
int sl_vp8_enc_encode(sl_vp8_enc *enc, const uint8_t *y, const uint8_t *u, const uint8_t *v,
                      int y_stride, int uv_stride, int64_t pts, int64_t duration,
                      int force_keyframe, const uint8_t **out, size_t *out_len,
                      int *is_keyframe) {
    if (enc == NULL || y == NULL || u == NULL || v == NULL || out == NULL ||
        out_len == NULL || is_keyframe == NULL) {
        return -1;
    }
    *out = NULL;
    *out_len = 0;
    *is_keyframe = 0;
    if (y_stride < enc->width || uv_stride < (enc->width + 1) / 2 || duration <= 0) {
        sl_set_error(enc->err, sizeof enc->err, "vp8 encoder: bad strides or duration", NULL);
        return -1;
    }
    vpx_image_t img;
    /* Wrap sets format, sizes and chroma shifts; the planes and strides are then pointed at
     * the caller's three separate buffers. libvpx copies the picture and never writes it. */
    if (vpx_img_wrap(&img, VPX_IMG_FMT_I420, (unsigned int)enc->width,
                     (unsigned int)enc->height, 1, (unsigned char *)(uintptr_t)y) == NULL) {
        sl_set_error(enc->err, sizeof enc->err, "vp8 encoder: cannot describe the picture",
                     NULL);
        return -1;
    }
    img.planes[VPX_PLANE_Y] = (unsigned char *)(uintptr_t)y;
    img.planes[VPX_PLANE_U] = (unsigned char *)(uintptr_t)u;
    img.planes[VPX_PLANE_V] = (unsigned char *)(uintptr_t)v;
    img.stride[VPX_PLANE_Y] = y_stride;
    img.stride[VPX_PLANE_U] = uv_stride;
    img.stride[VPX_PLANE_V] = uv_stride;

    vpx_enc_frame_flags_t flags = force_keyframe ? VPX_EFLAG_FORCE_KF : 0;
    if (vpx_codec_encode(&enc->ctx, &img, (vpx_codec_pts_t)pts, (unsigned long)duration, flags,
                         VPX_DL_REALTIME) != VPX_CODEC_OK) {
        sl_set_error(enc->err, sizeof enc->err, "vp8 encoder: encode failed", &enc->ctx);
        return -1;
    }
    enc->len = 0;
    int key = 0;
    vpx_codec_iter_t iter = NULL;
    const vpx_codec_cx_pkt_t *pkt;
    while ((pkt = vpx_codec_get_cx_data(&enc->ctx, &iter)) != NULL) {
        if (pkt->kind != VPX_CODEC_CX_FRAME_PKT) {
            continue;
        }
        if (sl_append(enc, pkt->data.frame.buf, pkt->data.frame.sz) != 0) {
            sl_set_error(enc->err, sizeof enc->err, "vp8 encoder: out of memory", NULL);
            enc->len = 0;
            return -1;
        }
        if (pkt->data.frame.flags & VPX_FRAME_IS_KEY) {
            key = 1;
        }
    }
    *out = enc->buf;
    *out_len = enc->len;
    *is_keyframe = key;
    return 0;
}

void sl_vp8_enc_free(sl_vp8_enc *enc) {
    if (enc == NULL) {
        return;
    }
    vpx_codec_destroy(&enc->ctx);
    free(enc->buf);
    free(enc);
}

/* ---------------------------------------------------------------- decoder */

typedef struct sl_vp8_dec {
    vpx_codec_ctx_t ctx;
    /* The picture of the last successful decode, owned by libvpx until the next decode. */
    vpx_image_t *img;
    char err[SL_ERRLEN];
} sl_vp8_dec;

sl_vp8_dec *sl_vp8_dec_new(char *err, int errlen) {
    size_t elen = errlen > 0 ? (size_t)errlen : 0;
    sl_vp8_dec *dec = calloc(1, sizeof *dec);
    if (dec == NULL) {
        sl_set_error(err, elen, "vp8 decoder: out of memory", NULL);
        return NULL;
    }
    vpx_codec_dec_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.threads = 1;
    if (vpx_codec_dec_init(&dec->ctx, vpx_codec_vp8_dx(), &cfg, 0) != VPX_CODEC_OK) {
        sl_set_error(err, elen, "vp8 decoder: init failed", &dec->ctx);
        free(dec);
        return NULL;
    }
    return dec;
}

const char *sl_vp8_dec_error(const sl_vp8_dec *dec) {
    return dec != NULL ? dec->err : "vp8 decoder: no decoder";
}

/* Decode one compressed frame. Returns 1 with the picture's size in *width and *height (then
 * sl_vp8_dec_copy copies it), 0 when libvpx has no picture to show, negative on error,
 * including a frame libvpx decoded but marks as corrupt. */
int sl_vp8_dec_decode(sl_vp8_dec *dec, const uint8_t *data, size_t len, int *width,
                      int *height) {
    if (dec == NULL || width == NULL || height == NULL) {
        return -1;
    }
    dec->img = NULL;
    *width = 0;
    *height = 0;
    /* NULL/0 means "flush" to libvpx, not a frame. */
    if (data == NULL || len == 0 || len > UINT32_MAX) {
        sl_set_error(dec->err, sizeof dec->err, "vp8 decoder: empty or oversized input", NULL);
        return -1;
    }
    if (vpx_codec_decode(&dec->ctx, data, (unsigned int)len, NULL, 0) != VPX_CODEC_OK) {
        sl_set_error(dec->err, sizeof dec->err, "vp8 decoder: decode failed", &dec->ctx);
        return -1;
    }
    int corrupted = 0;
    if (vpx_codec_control(&dec->ctx, VP8D_GET_FRAME_CORRUPTED, &corrupted) == VPX_CODEC_OK &&
        corrupted) {
        sl_set_error(dec->err, sizeof dec->err, "vp8 decoder: the frame is corrupt", NULL);
        return -1;
    }
    vpx_codec_iter_t iter = NULL;
    vpx_image_t *img;
    vpx_image_t *last = NULL;
    while ((img = vpx_codec_get_frame(&dec->ctx, &iter)) != NULL) {
        last = img;
    }
    if (last == NULL) {
        return 0;
    }
    if (last->fmt != VPX_IMG_FMT_I420 || last->d_w == 0 || last->d_h == 0 ||
        last->d_w > INT32_MAX || last->d_h > INT32_MAX ||
        last->stride[VPX_PLANE_Y] < (int)last->d_w ||
        last->stride[VPX_PLANE_U] < (int)((last->d_w + 1) / 2) ||
        last->stride[VPX_PLANE_V] < (int)((last->d_w + 1) / 2)) {
        sl_set_error(dec->err, sizeof dec->err, "vp8 decoder: unexpected picture format",
                     NULL);
        return -1;
    }
    dec->img = last;
    *width = (int)last->d_w;
    *height = (int)last->d_h;
    return 1;
}

/* Copy the last decoded picture into tight planes: y of width*height bytes, u and v of
 * ((width+1)/2)*((height+1)/2) each (the caller sized them from sl_vp8_dec_decode). */
int sl_vp8_dec_copy(sl_vp8_dec *dec, uint8_t *y, uint8_t *u, uint8_t *v) {
    if (dec == NULL || dec->img == NULL || y == NULL || u == NULL || v == NULL) {
        return -1;
    }
    const vpx_image_t *img = dec->img;
    size_t w = img->d_w, h = img->d_h;
    size_t cw = (w + 1) / 2, ch = (h + 1) / 2;
    for (size_t row = 0; row < h; row++) {
        memcpy(y + row * w, img->planes[VPX_PLANE_Y] + row * (size_t)img->stride[VPX_PLANE_Y],
               w);
    }
    for (size_t row = 0; row < ch; row++) {
        memcpy(u + row * cw, img->planes[VPX_PLANE_U] + row * (size_t)img->stride[VPX_PLANE_U],
               cw);
        memcpy(v + row * cw, img->planes[VPX_PLANE_V] + row * (size_t)img->stride[VPX_PLANE_V],
               cw);
    }
    return 0;
}

void sl_vp8_dec_free(sl_vp8_dec *dec) {
    if (dec == NULL) {
        return;
    }
    vpx_codec_destroy(&dec->ctx);
    free(dec);
}
