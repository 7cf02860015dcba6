/* video.c: FFmpeg demuxing, decoding and RGB conversion behind video.h.
 *
 * One small `decoder` walks a file's video stream frame by frame in decoder output order; video_probe and
 * video_read_frames are both loops over it, so the probe's frame numbering and the reader's are the same by
 * construction. Every library call's result is checked; corrupt packets are skipped the way ffmpeg and ffprobe
 * skip them, so frame counts agree with `ffprobe -count_frames`. */
#include "video.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#define VIDEO_SWS_FLAGS (SWS_BICUBIC | SWS_BITEXACT | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP)

/* While draining at the end of input, a decoder that keeps returning errors is given up on after this many,
 * so that no input, however corrupt, can keep a worker busy forever. (Before the end, every try consumes a
 * packet, so the loop ends with the file.) */
#define VIDEO_MAX_DRAIN_ERRORS 1000

/* Frames larger than this side are refused before any allocation (8K is 7680). */
#define VIDEO_MAX_SIDE 16384

typedef struct {
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int stream;
    int input_done;  /* the demuxer is exhausted and the decoder has been told to flush */
    int64_t emitted; /* frames returned so far */
    /* The first packet of our stream since the open or the last seek: where a seek really landed. */
    int seen_packet, first_packet_key;
    int64_t first_packet_ts; /* its dts, else its pts (AV_NOPTS_VALUE when it has neither) */
} decoder;

static const char *av_err_text(int code, char buf[AV_ERROR_MAX_STRING_SIZE]) {
    av_strerror(code, buf, AV_ERROR_MAX_STRING_SIZE);
    return buf;
}

static void decoder_close(decoder *d) {
    av_frame_free(&d->frame);
    av_packet_free(&d->pkt);
    avcodec_free_context(&d->dec);
    avformat_close_input(&d->fmt);
}

/* Distinguishes "missing" and "empty" from "not a media file" before FFmpeg gives a generic answer. */
static int check_file(const char *path, mvd_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) return mvd_fail(err, "%s: cannot open video: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return mvd_fail(err, "%s: not a regular file", path);
    if (st.st_size == 0) return mvd_fail(err, "%s: empty file (0 bytes)", path);
    return 0;
}

static int pick_video_stream(const char *path, decoder *d, const AVCodec **codec, mvd_err *err) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    int idx = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, codec, 0);
    if (idx == AVERROR_STREAM_NOT_FOUND) return mvd_fail(err, "%s: no video stream", path);
    if (idx == AVERROR_DECODER_NOT_FOUND) {
        /* av_find_best_stream does not say which stream it rejected: name the first video stream's codec. */
        const char *name = "unknown";
        for (unsigned i = 0; i < d->fmt->nb_streams; i++)
            if (d->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
                name = avcodec_get_name(d->fmt->streams[i]->codecpar->codec_id);
                break;
            }
        return mvd_fail(err, "%s: no decoder for video codec '%s' in this FFmpeg build", path, name);
    }
    if (idx < 0) return mvd_fail(err, "%s: cannot select a video stream: %s", path, av_err_text(idx, e));
    /* Cover art in an audio file is a one-picture "video" stream: not a video. */
    if (d->fmt->streams[idx]->disposition & AV_DISPOSITION_ATTACHED_PIC)
        return mvd_fail(err, "%s: no video stream (only an attached picture)", path);
    d->stream = idx;
    for (unsigned i = 0; i < d->fmt->nb_streams; i++)
        if ((int)i != idx) d->fmt->streams[i]->discard = AVDISCARD_ALL;
    return 0;
}

static int open_codec(const char *path, decoder *d, const AVCodec *codec, mvd_err *err) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    d->dec = avcodec_alloc_context3(codec);
    if (!d->dec) return mvd_fail(err, "%s: cannot allocate a decoder context", path);
    int ret = avcodec_parameters_to_context(d->dec, d->fmt->streams[d->stream]->codecpar);
    if (ret < 0) return mvd_fail(err, "%s: bad codec parameters: %s", path, av_err_text(ret, e));
    d->dec->pkt_timebase = d->fmt->streams[d->stream]->time_base;
    /* One thread and bit-exact DSP: the same bytes on every machine, whatever its SIMD. Parallelism comes
     * from decoding several videos at once. */
    d->dec->thread_count = 1;
    d->dec->flags |= AV_CODEC_FLAG_BITEXACT;
    /* The decoder allocates pictures from the stream's claimed size: cap it before it trusts the file. */
    d->dec->max_pixels = (int64_t)VIDEO_MAX_SIDE * VIDEO_MAX_SIDE;
    ret = avcodec_open2(d->dec, codec, NULL);
    if (ret < 0) return mvd_fail(err, "%s: cannot open the %s decoder: %s", path, codec->name, av_err_text(ret, e));
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->pkt || !d->frame) return mvd_fail(err, "%s: out of memory allocating a packet or frame", path);
    return 0;
}

static int decoder_open(const char *path, decoder *d, mvd_err *err) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    memset(d, 0, sizeof *d);
    d->stream = -1;
    if (check_file(path, err) != 0) return -1;
    int ret = avformat_open_input(&d->fmt, path, NULL, NULL);
    if (ret < 0) return mvd_fail(err, "%s: not a readable media file: %s", path, av_err_text(ret, e));
    ret = avformat_find_stream_info(d->fmt, NULL);
    if (ret < 0) {
        decoder_close(d);
        return mvd_fail(err, "%s: cannot read stream information: %s", path, av_err_text(ret, e));
    }
    const AVCodec *codec = NULL;
    if (pick_video_stream(path, d, &codec, err) != 0 || open_codec(path, d, codec, err) != 0) {
        decoder_close(d);
        return -1;
    }
    return 0;
}

/* Feeds the decoder one packet of our stream, or the flush signal at the end of input. Returns 0, or -1
 * after a failure that is not about the data (out of memory). Damaged packets are dropped, as ffmpeg does. */
static int decoder_feed(decoder *d, const char *path, mvd_err *err) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    int ret = av_read_frame(d->fmt, d->pkt);
    if (ret < 0) {
        /* EOF, or a read error in a truncated file: either way the input ends here. */
        d->input_done = 1;
        ret = avcodec_send_packet(d->dec, NULL);
        if (ret < 0 && ret != AVERROR_EOF)
            return mvd_fail(err, "%s: cannot flush the decoder: %s", path, av_err_text(ret, e));
        return 0;
    }
    if (d->pkt->stream_index == d->stream) {
        if (!d->seen_packet) {
            d->seen_packet = 1;
            d->first_packet_key = (d->pkt->flags & AV_PKT_FLAG_KEY) != 0;
            d->first_packet_ts = d->pkt->dts != AV_NOPTS_VALUE ? d->pkt->dts : d->pkt->pts;
        }
        ret = avcodec_send_packet(d->dec, d->pkt);
        if (ret == AVERROR(ENOMEM)) {
            av_packet_unref(d->pkt);
            return mvd_fail(err, "%s: out of memory while decoding", path);
        }
        /* Any other failure is a damaged packet: skipped, as ffmpeg skips it. */
    }
    av_packet_unref(d->pkt);
    return 0;
}

/* Next frame in decoder output order into d->frame. Returns 1 for a frame, 0 at the end of the stream, -1 on
 * a failure (message in err). */
static int decoder_next(decoder *d, const char *path, mvd_err *err) {
    int drain_errors = 0;
    for (;;) {
        int ret = avcodec_receive_frame(d->dec, d->frame);
        if (ret == 0) {
            d->emitted++;
            return 1;
        }
        if (ret == AVERROR_EOF) return 0;
        if (ret == AVERROR(ENOMEM)) return mvd_fail(err, "%s: out of memory while decoding", path);
        if (ret != AVERROR(EAGAIN)) {
            /* A frame that failed to decode: ffmpeg reports it and goes on. While draining, no packet is
             * consumed per try, so a decoder that fails forever is cut off. */
            if (d->input_done) {
                if (++drain_errors > VIDEO_MAX_DRAIN_ERRORS) return 0;
                continue;
            }
        } else if (d->input_done) {
            return 0; /* flushed and drained */
        }
        if (decoder_feed(d, path, err) != 0) return -1;
    }
}

/* The clockwise rotation that makes the stored frames upright, from the stream's display matrix, computed as
 * the ffmpeg command line does for its autorotation (flips are ignored there too). */
static int stream_rotation(const AVStream *st, int *rotation) {
    const uint8_t *matrix = NULL;
#if LIBAVFORMAT_VERSION_INT >= AV_VERSION_INT(60, 15, 100)
    const AVPacketSideData *sd = av_packet_side_data_get(st->codecpar->coded_side_data,
                                                         st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    if (sd && sd->size >= 9 * sizeof(int32_t)) matrix = sd->data;
#else
    size_t size = 0;
    matrix = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (size < 9 * sizeof(int32_t)) matrix = NULL;
#endif
    *rotation = 0;
    if (!matrix) return 0;
    double angle = av_display_rotation_get((const int32_t *)matrix);
    if (isnan(angle)) return 0;
    double theta = -round(angle);
    theta -= 360.0 * floor(theta / 360.0 + 0.9 / 360.0);
    double quarter = round(theta / 90.0);
    if (fabs(theta - 90.0 * quarter) > 1.0) return -1;
    *rotation = ((int)quarter % 4) * 90;
    return 0;
}

/* Timestamps of the frames in decoder output order, grown as frames arrive. */
typedef struct {
    int64_t *pts;
    int64_t count, cap;
    int missing; /* some frame has no timestamp at all */
} pts_list;

static void pts_push(pts_list *l, int64_t pts) {
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        int64_t *grown = realloc(l->pts, (size_t)l->cap * sizeof *grown);
        if (!grown) {
            fprintf(stderr, "fatal: out of memory recording %lld timestamps\n", (long long)l->cap);
            abort();
        }
        l->pts = grown;
    }
    if (pts == AV_NOPTS_VALUE) l->missing = 1;
    l->pts[l->count++] = pts;
}

typedef struct {
    int64_t pts, pos;
} pts_pos;

static int cmp_pts_pos(const void *a, const void *b) {
    const pts_pos *x = a, *y = b;
    if (x->pts != y->pts) return x->pts < y->pts ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Puts frames into presentation order: sorted by timestamp, ties kept in output order. Decoders already emit
 * presentation order, so this changes nothing for sane files; for files whose timestamps disagree with the
 * output order it follows the timestamps, as timestamp-indexed readers (decord) do. When some frame has no
 * timestamp (AVI with packed B-frames, for one) the output order is the only order there is; the timestamps
 * that exist are kept and the missing ones are AV_NOPTS_VALUE (INT64_MIN). */
static void order_frames(const pts_list *l, video_info *info) {
    int64_t n = l->count;
    info->num_frames = n;
    info->pts = xmalloc((size_t)n * sizeof *info->pts);
    info->decode_pos = xmalloc((size_t)n * sizeof *info->decode_pos);
    if (l->missing) {
        for (int64_t i = 0; i < n; i++) {
            info->pts[i] = l->pts[i];
            info->decode_pos[i] = i;
        }
        return;
    }
    pts_pos *order = xmalloc((size_t)n * sizeof *order);
    for (int64_t i = 0; i < n; i++) order[i] = (pts_pos){l->pts[i], i};
    qsort(order, (size_t)n, sizeof *order, cmp_pts_pos);
    for (int64_t i = 0; i < n; i++) {
        info->pts[i] = order[i].pts;
        info->decode_pos[i] = order[i].pos;
    }
    free(order);
}

static int check_frame_size(const char *path, const AVFrame *f, int64_t pos, int w, int h, mvd_err *err) {
    if (f->width != w || f->height != h)
        return mvd_fail(err, "%s: frame size changes from %dx%d to %dx%d at decoded frame %lld", path, w, h,
                        f->width, f->height, (long long)pos);
    return 0;
}

static int record_first_frame(const char *path, const decoder *d, video_info *info, mvd_err *err) {
    const AVFrame *f = d->frame;
    if (f->width <= 0 || f->height <= 0 || f->width > VIDEO_MAX_SIDE || f->height > VIDEO_MAX_SIDE)
        return mvd_fail(err, "%s: unsupported frame size %dx%d", path, f->width, f->height);
    info->coded_width = f->width;
    info->coded_height = f->height;
    int quarter = info->rotation == 90 || info->rotation == 270;
    info->width = quarter ? f->height : f->width;
    info->height = quarter ? f->width : f->height;
    const char *pf = av_get_pix_fmt_name((enum AVPixelFormat)f->format);
    snprintf(info->pix_fmt, sizeof info->pix_fmt, "%s", pf ? pf : "unknown");
    return 0;
}

static int probe_frames(const char *path, decoder *d, video_info *info, pts_list *pts, mvd_err *err) {
    int got;
    while ((got = decoder_next(d, path, err)) == 1) {
        if (pts->count == 0) {
            if (record_first_frame(path, d, info, err) != 0) return -1;
        } else if (check_frame_size(path, d->frame, pts->count, info->coded_width, info->coded_height, err) != 0) {
            return -1;
        }
        pts_push(pts, d->frame->best_effort_timestamp);
        av_frame_unref(d->frame);
    }
    if (got < 0) return -1;
    if (pts->count == 0) return mvd_fail(err, "%s: no decodable video frames", path);
    return 0;
}

int video_probe(const char *path, video_info *info, mvd_err *err) {
    memset(info, 0, sizeof *info);
    decoder d;
    if (decoder_open(path, &d, err) != 0) return -1;
    const AVStream *st = d.fmt->streams[d.stream];
    info->time_base_num = st->time_base.num;
    info->time_base_den = st->time_base.den;
    snprintf(info->codec, sizeof info->codec, "%s", d.dec->codec->name);
    int rc = 0;
    if (stream_rotation(st, &info->rotation) != 0)
        rc = mvd_fail(err, "%s: rotation metadata is not a multiple of 90 degrees", path);
    pts_list pts = {0};
    if (rc == 0) rc = probe_frames(path, &d, info, &pts, err);
    if (rc == 0) order_frames(&pts, info);
    free(pts.pts);
    decoder_close(&d);
    if (rc != 0) video_info_free(info);
    return rc;
}

void video_info_free(video_info *info) {
    free(info->pts);
    free(info->decode_pos);
    info->pts = NULL;
    info->decode_pos = NULL;
    info->num_frames = 0;
}

/* ---- reading frames ---- */

/* One converted frame: RGB24 of the whole decoded (not yet rotated) picture. The row stride is padded to
 * 64 bytes because libswscale's SIMD paths want aligned rows; crops copy out only the pixels. */
typedef struct {
    struct SwsContext *sws;
    uint8_t *rgb;
    int stride;
} rgb_converter;

/* Sets the YCbCr matrix and range from the frame, as FFmpeg's scale filter does with its defaults
 * (in_color_matrix=auto, in_range=auto), so frames tagged BT.709 or full range convert as ffmpeg converts them. */
static void apply_frame_colorspace(struct SwsContext *sws, const AVFrame *f) {
    int *inv_table, *table, src_full, dst_full, brightness, contrast, saturation;
    if (sws_getColorspaceDetails(sws, &inv_table, &src_full, &table, &dst_full, &brightness, &contrast,
                                 &saturation) < 0)
        return; /* not a YCbCr source: nothing to set */
    const int *coefs = sws_getCoefficients(f->colorspace);
    if (f->color_range != AVCOL_RANGE_UNSPECIFIED) src_full = f->color_range == AVCOL_RANGE_JPEG;
    /* A failure here means the conversion cannot honour the tags; swscale keeps its previous (default) matrix,
     * which is what ffmpeg's scale filter ends up with too. */
    (void)sws_setColorspaceDetails(sws, coefs, src_full, coefs, dst_full, brightness, contrast, saturation);
}

static int convert_frame(rgb_converter *c, const AVFrame *f, const char *path, mvd_err *err) {
    c->sws = sws_getCachedContext(c->sws, f->width, f->height, (enum AVPixelFormat)f->format, f->width, f->height,
                                  AV_PIX_FMT_RGB24, VIDEO_SWS_FLAGS, NULL, NULL, NULL);
    if (!c->sws) {
        const char *pf = av_get_pix_fmt_name((enum AVPixelFormat)f->format);
        return mvd_fail(err, "%s: libswscale cannot convert %s to rgb24", path, pf ? pf : "this pixel format");
    }
    if (!c->rgb) {
        c->stride = FFALIGN(f->width * 3, 64);
        /* One spare row: some swscale output paths write a few bytes past the last pixel of a row. */
        c->rgb = av_malloc((size_t)c->stride * (size_t)(f->height + 1));
        if (!c->rgb) return mvd_fail(err, "%s: out of memory for a %dx%d RGB frame", path, f->width, f->height);
    }
    apply_frame_colorspace(c->sws, f);
    uint8_t *dst[4] = {c->rgb, NULL, NULL, NULL};
    int dst_stride[4] = {c->stride, 0, 0, 0};
    int rows = sws_scale(c->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dst_stride);
    if (rows != f->height)
        return mvd_fail(err, "%s: libswscale converted %d of %d rows", path, rows < 0 ? 0 : rows, f->height);
    return 0;
}

/* Where upright pixel (ux, uy) lies in the stored picture of size w x h, for a clockwise rotation. */
static inline void upright_to_stored(int rotation, int w, int h, int ux, int uy, int *sx, int *sy) {
    switch (rotation) {
    case 90: *sx = uy; *sy = h - 1 - ux; break;
    case 180: *sx = w - 1 - ux; *sy = h - 1 - uy; break;
    case 270: *sx = w - 1 - uy; *sy = ux; break;
    default: *sx = ux; *sy = uy; break;
    }
}

/* Copies the crop (upright coordinates) out of a converted frame; pixels outside the frame are black. */
static void copy_crop(const rgb_converter *c, const video_info *info, crop_box crop, uint8_t *out) {
    for (int y = 0; y < crop.h; y++) {
        uint8_t *row = out + (size_t)y * (size_t)crop.w * 3;
        int uy = crop.y + y;
        if (info->rotation == 0 && uy >= 0 && uy < info->height && crop.x >= 0 && crop.x + crop.w <= info->width) {
            memcpy(row, c->rgb + (size_t)uy * (size_t)c->stride + (size_t)crop.x * 3, (size_t)crop.w * 3);
            continue;
        }
        for (int x = 0; x < crop.w; x++) {
            int ux = crop.x + x, sx, sy;
            uint8_t *px = row + (size_t)x * 3;
            if (ux < 0 || uy < 0 || ux >= info->width || uy >= info->height) {
                px[0] = px[1] = px[2] = 0;
                continue;
            }
            upright_to_stored(info->rotation, info->coded_width, info->coded_height, ux, uy, &sx, &sy);
            memcpy(px, c->rgb + (size_t)sy * (size_t)c->stride + (size_t)sx * 3, 3);
        }
    }
}

/* A requested frame: where it comes out of the decoder and which output slot it fills. */
typedef struct {
    int64_t pos;
    int slot;
} frame_request;

static int cmp_request(const void *a, const void *b) {
    const frame_request *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    return (x->slot > y->slot) - (x->slot < y->slot);
}

static int check_crop_size(const char *path, crop_box crop, mvd_err *err) {
    if (crop.w <= 0 || crop.h <= 0 || crop.w > VIDEO_MAX_SIDE || crop.h > VIDEO_MAX_SIDE)
        return mvd_fail(err, "%s: invalid crop size %dx%d", path, crop.w, crop.h);
    return 0;
}

/* Crops may hang over the frame's edge (filled black) but must overlap it, or they are a caller's bug. */
static int check_crop_overlap(const char *path, const video_info *info, crop_box crop, mvd_err *err) {
    if (crop.x >= info->width || crop.y >= info->height || crop.x + crop.w <= 0 || crop.y + crop.h <= 0)
        return mvd_fail(err, "%s: crop %dx%d at (%d,%d) lies outside the %dx%d frame", path, crop.w, crop.h, crop.x,
                        crop.y, info->width, info->height);
    return 0;
}

static int validate_request(const char *path, const video_info *info, const int64_t *indices, int n,
                            crop_box crop, mvd_err *err) {
    if (n <= 0) return mvd_fail(err, "%s: no frames requested", path);
    if (!info->decode_pos || info->num_frames <= 0) return mvd_fail(err, "%s: video not probed", path);
    if (check_crop_size(path, crop, err) != 0 || check_crop_overlap(path, info, crop, err) != 0) return -1;
    for (int i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= info->num_frames)
            return mvd_fail(err, "%s: frame %lld requested, the video has %lld decodable frames", path,
                            (long long)indices[i], (long long)info->num_frames);
    return 0;
}

/* Decodes up to the last requested position, filling every slot whose frame comes by. Returns 0 when all
 * are filled, else -1 with the first index that could not be produced. */
static int decode_requests(const char *path, const video_info *info, const int64_t *indices, frame_request *req,
                           int n, crop_box crop, uint8_t *out, int64_t *pts_out, mvd_err *err) {
    decoder d;
    if (decoder_open(path, &d, err) != 0) return -1;
    rgb_converter conv = {0};
    size_t frame_bytes = (size_t)crop.w * (size_t)crop.h * 3;
    int next = 0, got = 0, rc = 0;
    while (next < n && (got = decoder_next(&d, path, err)) == 1) {
        int64_t pos = d.emitted - 1;
        if (pos == req[next].pos) {
            if (check_frame_size(path, d.frame, pos, info->coded_width, info->coded_height, err) != 0 ||
                convert_frame(&conv, d.frame, path, err) != 0) {
                rc = -1;
                break;
            }
            for (; next < n && req[next].pos == pos; next++) {
                int slot = req[next].slot;
                copy_crop(&conv, info, crop, out + (size_t)slot * frame_bytes);
                if (pts_out) pts_out[slot] = d.frame->best_effort_timestamp;
            }
        }
        av_frame_unref(d.frame);
    }
    if (rc == 0 && got < 0) rc = mvd_fail_ctx(err, "frame %lld", (long long)indices[req[next].slot]);
    else if (rc == 0 && next < n)
        rc = mvd_fail(err, "%s: frame %lld cannot be decoded: the stream ended after %lld frames (the probe saw %lld)",
                      path, (long long)indices[req[next].slot], (long long)d.emitted, (long long)info->num_frames);
    sws_freeContext(conv.sws);
    av_free(conv.rgb);
    decoder_close(&d);
    return rc;
}

/* The file must decode as it did when probed: a timestamp that moved means the file changed. */
static int check_timestamps(const char *path, const video_info *info, const int64_t *indices, int n,
                            const int64_t *pts, mvd_err *err) {
    for (int i = 0; i < n; i++)
        if (pts[i] != info->pts[indices[i]])
            return mvd_fail(err, "%s: frame %lld has timestamp %lld, the probe recorded %lld (file changed?)", path,
                            (long long)indices[i], (long long)pts[i], (long long)info->pts[indices[i]]);
    return 0;
}

int video_read_frames(const char *path, const video_info *info, const int64_t *indices, int n, crop_box crop,
                      uint8_t *out, int64_t *pts_out, mvd_err *err) {
    if (validate_request(path, info, indices, n, crop, err) != 0) return -1;
    frame_request *req = xmalloc((size_t)n * sizeof *req);
    int64_t *pts = xmalloc((size_t)n * sizeof *pts);
    for (int i = 0; i < n; i++) req[i] = (frame_request){info->decode_pos[indices[i]], i};
    qsort(req, (size_t)n, sizeof *req, cmp_request);
    int rc = decode_requests(path, info, indices, req, n, crop, out, pts, err);
    if (rc == 0) rc = check_timestamps(path, info, indices, n, pts, err);
    if (rc == 0 && pts_out) memcpy(pts_out, pts, (size_t)n * sizeof *pts);
    free(pts);
    free(req);
    return rc;
}

/* ---- reading frames by timestamp, without a probe ---- */

/* One requested frame. Sorted by timestamp, then slot, so the slots of a repeated frame are adjacent. */
typedef struct {
    int64_t pts, index; /* index -1 when the caller gave none */
    int slot;
} pts_slot;

static int cmp_pts_slot(const void *a, const void *b) {
    const pts_slot *x = a, *y = b;
    if (x->pts != y->pts) return x->pts < y->pts ? -1 : 1;
    return (x->slot > y->slot) - (x->slot < y->slot);
}

/* What one decoding pass concludes. */
typedef enum {
    PASS_GOING,      /* still looking */
    PASS_DONE,       /* every requested frame delivered */
    PASS_EARLIER,    /* a seek landed after the earliest request: try an earlier keyframe */
    PASS_FROM_START, /* the seek cannot be trusted: decode again from the start */
    PASS_PROBE,      /* timestamps cannot vouch for the frames: the caller must probe (message in err) */
    PASS_ERROR       /* the video cannot be read (message in err) */
} pass_outcome;

typedef struct {
    const char *path;
    const video_pts_request *rq;
    pts_slot *want;     /* [rq->n], sorted */
    uint8_t *out;
    decoder d;
    rgb_converter conv;
    video_info geom;    /* rotation and sizes only, for copy_crop */
    int seeking;        /* the current pass started at a keyframe found by seeking */
    int next;           /* first entry of want not yet delivered */
    int64_t prev_pts;   /* last timestamp of the pass, AV_NOPTS_VALUE before the first */
    int64_t origin_pos, origin_index; /* output position and index that positions are measured from */
    video_pts_stats stats;
} pts_reader;

static int frame_is_key(const AVFrame *f) {
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(58, 29, 100)
    return (f->flags & AV_FRAME_FLAG_KEY) != 0;
#else
    return f->key_frame != 0;
#endif
}

/* A doubt ends a seek pass with a decode from the start, and a pass from the start with the probe path. The
 * message says what was seen; it reaches the caller only in the second case. */
static pass_outcome doubt(const pts_reader *r, mvd_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static pass_outcome doubt(const pts_reader *r, mvd_err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return r->seeking ? PASS_FROM_START : PASS_PROBE;
}

/* Requests that timestamps can serve: every timestamp known, and indices that agree with the timestamps'
 * order (a repeated timestamp has one index; a later one, a larger index). */
static int check_pts_request(const char *path, const video_pts_request *rq, const pts_slot *want, mvd_err *err) {
    for (int i = 0; i < rq->n; i++)
        if (want[i].pts == AV_NOPTS_VALUE)
            return mvd_fail(err, "%s: a requested frame (index %lld) has no recorded timestamp", path,
                            (long long)want[i].index);
    if (!rq->indices) return 0;
    for (int i = 1; i < rq->n; i++) {
        int same = want[i].pts == want[i - 1].pts;
        if ((same && want[i].index != want[i - 1].index) || (!same && want[i].index <= want[i - 1].index))
            return mvd_fail(err, "%s: timestamps %lld and %lld were recorded for frames %lld and %lld: out of order",
                            path, (long long)want[i - 1].pts, (long long)want[i].pts, (long long)want[i - 1].index,
                            (long long)want[i].index);
    }
    return 0;
}

/* Upright size from the pass's first frame and the stream's rotation, as video_probe finds it. */
static int set_geometry(pts_reader *r, const AVFrame *f, mvd_err *err) {
    video_info *g = &r->geom;
    if (f->width <= 0 || f->height <= 0 || f->width > VIDEO_MAX_SIDE || f->height > VIDEO_MAX_SIDE)
        return mvd_fail(err, "%s: unsupported frame size %dx%d", r->path, f->width, f->height);
    g->coded_width = f->width;
    g->coded_height = f->height;
    int quarter = g->rotation == 90 || g->rotation == 270;
    g->width = quarter ? f->height : f->width;
    g->height = quarter ? f->width : f->height;
    return check_crop_overlap(r->path, g, r->rq->crop, err);
}

/* The first frame of a pass. After a seek it must be a keyframe, from a key packet, with a timestamp at or
 * before the earliest request: then nothing decoded in this pass depends on frames before it. */
static pass_outcome start_pass(pts_reader *r, const AVFrame *f, mvd_err *err) {
    int64_t ts = f->best_effort_timestamp;
    if (set_geometry(r, f, err) != 0) return PASS_ERROR;
    r->stats.start_pts = ts;
    if (!r->seeking) return PASS_GOING;
    if (!r->d.first_packet_key || !frame_is_key(f) || ts == AV_NOPTS_VALUE)
        return doubt(r, err, "%s: the seek did not land on a keyframe with a timestamp", r->path);
    if (ts > r->want[0].pts) return PASS_EARLIER;
    return PASS_GOING;
}

/* Copies the current frame into every slot that asked for its timestamp, after checking its position. */
static pass_outcome deliver(pts_reader *r, int64_t pos, mvd_err *err) {
    const pts_slot *w = &r->want[r->next];
    if (w->index >= 0) {
        /* A seek pass does not know absolute positions: it measures from the first frame it delivers. */
        if (r->seeking && r->next == 0) r->origin_pos = pos, r->origin_index = w->index;
        int64_t expect = r->origin_pos + (w->index - r->origin_index);
        if (pos != expect)
            return doubt(r, err, "%s: the frame with timestamp %lld comes out %lld frames after %s, the cache's "
                         "frame indices say %lld (frames added or removed?)", r->path, (long long)w->pts,
                         (long long)(pos - r->origin_pos), r->seeking ? "the first requested frame" : "the start",
                         (long long)(expect - r->origin_pos));
    }
    if (convert_frame(&r->conv, r->d.frame, r->path, err) != 0) return PASS_ERROR;
    size_t frame_bytes = (size_t)r->rq->crop.w * (size_t)r->rq->crop.h * 3;
    int64_t pts = w->pts;
    for (; r->next < r->rq->n && r->want[r->next].pts == pts; r->next++)
        copy_crop(&r->conv, &r->geom, r->rq->crop, r->out + (size_t)r->want[r->next].slot * frame_bytes);
    return r->next == r->rq->n ? PASS_DONE : PASS_GOING;
}

/* One frame out of the decoder. Timestamps must rise strictly: then output order is presentation order, a
 * timestamp passed over is not in the stream, and positions count frames as video_probe numbers them. Frames
 * without a timestamp are counted but never requested. */
static pass_outcome take_frame(pts_reader *r, mvd_err *err) {
    const AVFrame *f = r->d.frame;
    int64_t pos = r->d.emitted - 1, ts = f->best_effort_timestamp;
    if (pos == 0) {
        pass_outcome o = start_pass(r, f, err);
        if (o != PASS_GOING) return o;
    } else if (check_frame_size(r->path, f, pos, r->geom.coded_width, r->geom.coded_height, err) != 0) {
        return PASS_ERROR;
    }
    if (ts == AV_NOPTS_VALUE) return PASS_GOING;
    if (r->prev_pts != AV_NOPTS_VALUE && ts <= r->prev_pts)
        return doubt(r, err, "%s: timestamps do not increase in decoder output (%lld after %lld)", r->path,
                     (long long)ts, (long long)r->prev_pts);
    int64_t prev = r->prev_pts;
    r->prev_pts = ts;
    const pts_slot *w = &r->want[r->next];
    if (ts < w->pts) return PASS_GOING;
    if (ts > w->pts)
        return doubt(r, err, "%s: no frame has timestamp %lld (frame %lld in the cache): the stream goes from %lld "
                     "to %lld", r->path, (long long)w->pts, (long long)w->index, (long long)prev, (long long)ts);
    return deliver(r, pos, err);
}

static pass_outcome run_pass(pts_reader *r, int seeking, mvd_err *err) {
    r->seeking = seeking;
    r->next = 0;
    r->prev_pts = AV_NOPTS_VALUE;
    r->origin_pos = r->origin_index = 0;
    r->stats.passes++;
    /* The RGB buffer is sized by the first frame converted; a new pass may meet another size first. */
    av_freep(&r->conv.rgb);
    pass_outcome o = PASS_GOING;
    int got = 0;
    while (o == PASS_GOING && (got = decoder_next(&r->d, r->path, err)) == 1) {
        r->stats.decoded++;
        o = take_frame(r, err);
        av_frame_unref(r->d.frame);
    }
    if (o != PASS_GOING) return o;
    if (got < 0) return PASS_ERROR;
    return doubt(r, err, "%s: no frame has timestamp %lld (frame %lld in the cache): the stream ended after %lld "
                 "frames", r->path, (long long)r->want[r->next].pts, (long long)r->want[r->next].index,
                 (long long)r->d.emitted);
}

/* Seeks to the keyframe at or before target and empties the decoder, so the next pass starts there. */
static pass_outcome seek_to(pts_reader *r, int64_t target, mvd_err *err) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    int ret = av_seek_frame(r->d.fmt, r->d.stream, target, AVSEEK_FLAG_BACKWARD);
    if (ret < 0) {
        mvd_fail(err, "%s: cannot seek to %lld: %s", r->path, (long long)target, av_err_text(ret, e));
        return PASS_FROM_START;
    }
    avcodec_flush_buffers(r->d.dec);
    r->d.input_done = 0;
    r->d.emitted = 0;
    r->d.seen_packet = 0;
    return PASS_GOING;
}

/* Seek passes. A seek lands on the keyframe whose index timestamp (often the dts) is at or before the target,
 * which with B-frames may present after it; then one more try aims before that keyframe's packet. */
static pass_outcome seek_passes(pts_reader *r, mvd_err *err) {
    int64_t target = r->want[0].pts;
    for (int attempt = 0; attempt < 2; attempt++) {
        pass_outcome o = seek_to(r, target, err);
        if (o == PASS_GOING) o = run_pass(r, 1, err);
        if (o != PASS_EARLIER) return o;
        int64_t landed = r->d.first_packet_ts;
        if (landed == AV_NOPTS_VALUE || landed <= INT64_MIN + 1) break;
        target = (landed < target ? landed : target) - 1;
    }
    return PASS_FROM_START;
}

/* Opens the file with the stream's rotation and checks the request's time base against the stream's. */
static pass_outcome open_reader(pts_reader *r, mvd_err *err) {
    if (decoder_open(r->path, &r->d, err) != 0) return PASS_ERROR;
    const AVStream *st = r->d.fmt->streams[r->d.stream];
    if (stream_rotation(st, &r->geom.rotation) != 0) {
        mvd_fail(err, "%s: rotation metadata is not a multiple of 90 degrees", r->path);
        return PASS_ERROR;
    }
    const video_pts_request *rq = r->rq;
    if ((rq->time_base_num || rq->time_base_den) &&
        (rq->time_base_num != st->time_base.num || rq->time_base_den != st->time_base.den)) {
        mvd_fail(err, "%s: stream time base %d/%d, the timestamps are in %d/%d", r->path, st->time_base.num,
                 st->time_base.den, rq->time_base_num, rq->time_base_den);
        return PASS_PROBE;
    }
    return PASS_GOING;
}

/* Seek passes first; a pass from the start, on a freshly opened file (the very state video_read_frames
 * decodes from), when they cannot be trusted. */
static pass_outcome read_by_pts(pts_reader *r, mvd_err *err) {
    pass_outcome o = open_reader(r, err);
    if (o != PASS_GOING) return o;
    if (!(r->rq->flags & VIDEO_PTS_NO_SEEK)) {
        o = seek_passes(r, err);
        if (o != PASS_FROM_START) {
            r->stats.seeked = o == PASS_DONE;
            return o;
        }
        decoder_close(&r->d);
        o = open_reader(r, err);
        if (o != PASS_GOING) return o;
    }
    return run_pass(r, 0, err);
}

int video_read_frames_by_pts(const char *path, const video_pts_request *rq, uint8_t *out, video_pts_stats *stats,
                             mvd_err *err) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (rq->n <= 0 || !rq->pts) return mvd_fail(err, "%s: no frames requested", path);
    if (check_crop_size(path, rq->crop, err) != 0) return -1;
    pts_reader r = {.path = path, .rq = rq, .out = out};
    r.want = xmalloc((size_t)rq->n * sizeof *r.want);
    for (int i = 0; i < rq->n; i++) r.want[i] = (pts_slot){rq->pts[i], rq->indices ? rq->indices[i] : -1, i};
    qsort(r.want, (size_t)rq->n, sizeof *r.want, cmp_pts_slot);
    pass_outcome o = check_pts_request(path, rq, r.want, err) != 0 ? PASS_PROBE : read_by_pts(&r, err);
    sws_freeContext(r.conv.sws);
    av_free(r.conv.rgb);
    decoder_close(&r.d);
    free(r.want);
    if (stats) *stats = r.stats;
    return o == PASS_DONE ? 0 : o == PASS_PROBE ? VIDEO_PTS_FALLBACK : -1;
}

const char *video_ffmpeg_version(void) { return av_version_info(); }

const char *video_conversion_desc(void) {
    return "decoder: 1 thread, flags=bitexact; swscale -> rgb24: "
           "bicubic+bitexact+accurate_rnd+full_chroma_int+full_chroma_inp, frame colorspace/range; "
           "rotation from the display matrix";
}

void video_quiet_ffmpeg_log(void) { av_log_set_level(AV_LOG_FATAL); }
