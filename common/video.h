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

/* FFmpeg's version string (av_version_info), for cache metadata. */
const char *video_ffmpeg_version(void);

/* A one-line description of how pixels are produced (decoder and swscale flags), for cache metadata: a cache
 * made with a different conversion would not match mvd-train's decoding. */
const char *video_conversion_desc(void);

/* Silences FFmpeg's own log output below errors that abort a decode; the project reports failures itself. */
void video_quiet_ffmpeg_log(void);

#endif
