/* video.h: decoding video frames into RGB crops with FFmpeg's libraries.
 *
 * A frame index means "the i-th decodable frame in presentation order". Container headers are not trusted for
 * frame counts (an AVI index may promise frames that are not there), so video_probe runs one full demux +
 * decode pass and records every frame's presentation timestamp. video_read_frames then decodes sequentially
 * from the start and stops after the last frame it needs: exact whatever the keyframe interval, B-frame
 * reordering or timestamp oddities, and memory stays at one decoded frame plus one RGB frame.
 *
 * Pixels are defined precisely so that two machines produce the same bytes: the decoder runs single-threaded
 * with AV_CODEC_FLAG_BITEXACT, and libswscale converts any pixel format to RGB24 with
 * SWS_BICUBIC | SWS_BITEXACT | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP (chroma interpolated
 * rather than replicated), taking the YCbCr matrix and range from each frame as FFmpeg's scale filter does.
 * `ffmpeg -flags bitexact -i V -sws_flags bicubic+bitexact+accurate_rnd+full_chroma_int+full_chroma_inp
 * -pix_fmt rgb24` gives the same bytes (the tests check it). Rotation metadata (display matrix) is applied, so
 * widths, heights and crop boxes always refer to the upright frame; the RGB frame is turned after conversion
 * (an exact permutation of the unrotated frame's pixels), where ffmpeg turns the YCbCr planes before it, so on
 * rotated videos ffmpeg's output differs from ours by 1 at a few chroma edges (about 0.1% of the bytes). */
#ifndef MVD_VIDEO_H
#define MVD_VIDEO_H

#include <stdint.h>

#include "clip.h"
#include "util.h"

/* What video_probe learns about one video. Owns pts and decode_pos; release with video_info_free. */
typedef struct video_info {
    int64_t num_frames;         /* decodable frames (not the header's claim) */
    int64_t *pts;               /* [num_frames] presentation timestamps in time-base units, ascending;
                                   INT64_MIN (AV_NOPTS_VALUE) for a frame that has none, and then the
                                   frames stay in decoder output order */
    int64_t *decode_pos;        /* [num_frames] frame i is the decode_pos[i]-th frame out of the decoder */
    int time_base_num, time_base_den;
    int width, height;          /* upright (rotation applied) */
    int coded_width, coded_height; /* as decoded, before rotation */
    int rotation;               /* clockwise degrees applied to decoded frames: 0, 90, 180 or 270 */
    char codec[32];
    char pix_fmt[32];
} video_info;

/* Full demux + decode pass over `path`. Fails, naming the file and the reason, for a missing or empty file,
 * a file that is not a media file, one without a video stream, a codec without a decoder, a rotation that is
 * not a multiple of 90 degrees, a frame size that changes mid-stream, or zero decodable frames. Truncated
 * files and lying indexes end the pass early instead of hanging. */
int video_probe(const char *path, video_info *info, mvd_err *err);
void video_info_free(video_info *info);

/* Decodes frames indices[0..n) (repeats allowed, any order) of a probed video and writes each one's crop as
 * RGB24 into out, laid out [n][crop.h][crop.w][3] without padding; pts_out[i] (may be NULL) gets the frame's
 * timestamp. The crop is in upright coordinates; parts outside the frame are black, as PIL's Image.crop makes
 * them (the reference's crop offsets can be negative when the short side is within 3 px of the input size).
 * A frame that cannot be produced is an error naming the video and the index. */
int video_read_frames(const char *path, const video_info *info, const int64_t *indices, int n, crop_box crop,
                      uint8_t *out, int64_t *pts_out, mvd_err *err);

/* ---- reading frames by timestamp, without a probe ----
 *
 * A cache records each sampled frame's presentation timestamp, so mvd-train can find its frames without the
 * full decode pass of video_probe: it seeks to the keyframe at or before the earliest timestamp and decodes
 * forward, taking the frames whose best-effort timestamps equal the requested ones. Decoding starts from a
 * fresh decoder at a keyframe, so the pixels are those video_read_frames gives, provided the keyframe really
 * is a clean entry point; every doubt about that (see video_read_frames_by_pts) sends the read back to the
 * start of the file, still by timestamp, and every doubt about the timestamps themselves sends it to the
 * caller's probe + video_read_frames path. Memory stays at one decoded frame plus one RGB frame. */

/* What to read. pts and indices are [n]; repeats are allowed, in any order. */
typedef struct {
    const int64_t *pts;      /* presentation timestamps in the stream time base, as video_info.pts has them */
    const int64_t *indices;  /* frame indices the timestamps were recorded for, or NULL. When given, the frames
                                found must sit as far apart in decoder output order as the indices say (and,
                                when decoding from the start, at those very positions): a file that gained or
                                lost frames in between is sent to the probe path. */
    int n;
    int time_base_num, time_base_den; /* of pts; must equal the stream's (0/0: not checked) */
    crop_box crop;           /* upright coordinates, as for video_read_frames */
    int flags;               /* VIDEO_PTS_* */
} video_pts_request;

#define VIDEO_PTS_NO_SEEK 1 /* decode from the start of the file (still without a probe) */

/* How a read went, for tests and measurements. */
typedef struct {
    int seeked;          /* 1 when the frames came from a pass that started at a keyframe found by seeking */
    int passes;          /* decoding passes run: seek tries plus the pass from the start, if any */
    int64_t decoded;     /* frames taken out of the decoder over all passes */
    int64_t start_pts;   /* best-effort timestamp of the first frame of the pass that delivered */
} video_pts_stats;

/* Returned by video_read_frames_by_pts when timestamps alone cannot vouch for the frames. */
#define VIDEO_PTS_FALLBACK 1

/* Decodes the frames with the requested timestamps of `path` and writes each one's crop into out
 * ([n][crop.h][crop.w][3], as video_read_frames does). Upright size and rotation come from the stream headers
 * and the first decoded frame, as in video_probe. Returns
 *   0                   every frame found, byte-identical to video_read_frames for the same frames;
 *   VIDEO_PTS_FALLBACK  the caller must probe and use video_read_frames; err says why (a requested timestamp
 *                       is AV_NOPTS_VALUE/INT64_MIN or not in the stream, the stream ends first, timestamps
 *                       are not strictly increasing in decoder output, a timestamp or an index disagrees with
 *                       the request, the time base differs);
 *  -1                   the video cannot be read at all (missing, not media, no decoder...) or the request
 *                       is invalid (crop outside the frame); err names the video.
 * Seeking (unless VIDEO_PTS_NO_SEEK): av_seek_frame(AVSEEK_FLAG_BACKWARD) to the earliest timestamp. The
 * pass is trusted only if its first frame is a keyframe with a timestamp at or before the earliest request;
 * one that lands later is retried once from an earlier keyframe, and anything else doubtful (the seek fails,
 * the first frame is not a keyframe or has no timestamp, any of the conditions above) decodes again from the
 * start. stats may be NULL. */
int video_read_frames_by_pts(const char *path, const video_pts_request *req, uint8_t *out, video_pts_stats *stats,
                             mvd_err *err);

/* FFmpeg's version string (av_version_info), for cache metadata. */
const char *video_ffmpeg_version(void);

/* A one-line description of how pixels are produced (decoder and swscale flags), for cache metadata: a cache
 * made with a different conversion would not match mvd-train's decoding. */
const char *video_conversion_desc(void);

/* Silences FFmpeg's own log output below errors that abort a decode; the project reports failures itself. */
void video_quiet_ffmpeg_log(void);

#endif
