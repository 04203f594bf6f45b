"""Frame-by-frame enhancement with a causal model: one hop of samples in, one hop out.

The stream keeps three pieces of history between calls: the last `n_fft` input samples, the
model's own state (conv cache, GRU states; see `LiteNet.forward_stateful`) and the overlap-add
buffer of the inverse STFT together with its window-energy envelope.

Definition of "the same as offline": output sample m of the stream equals sample m - D of the
offline path of a causal model (`common.enhance.Enhancer` over a `TorchBackend`, which pads the
STFT with zeros as a stream does), with D = `latency_samples` = n_fft - hop (the first D samples
are 0). It holds to float rounding from the first sample to the last, on any signal.
Algorithmic latency is that delay plus the hop being collected: n_fft samples (32 ms at 512).

`StreamingBackend` is the same model step behind the one waveform wrapper
(`enhance --streaming`): the spectrum is fed to the model one frame at a time.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from common.audio import stft_window
from common.config import StftConfig
from common.errors import UserError


def algorithmic_latency_ms(stft: StftConfig, lookahead_frames: int = 0) -> float:
    """Delay from a sample entering to its enhanced version leaving: the frame plus look-ahead."""
    return 1000.0 * (stft.n_fft + lookahead_frames * stft.hop_length) / stft.sample_rate


def _padded_window(stft: StftConfig) -> torch.Tensor:
    # torch.stft centres a shorter window inside n_fft; the stream frames must match that.
    win = stft_window(stft)
    left = (stft.n_fft - len(win)) // 2
    return nn.functional.pad(win, (left, stft.n_fft - len(win) - left))


def is_streamable(model: nn.Module) -> bool:
    """Whether `model` never looks ahead and runs frame by frame with explicit state."""
    return hasattr(model, "forward_stateful") and bool(getattr(model, "causal", False))


def check_streamable(model: nn.Module, stft: StftConfig) -> None:
    """A one-line UserError unless `model` can stream with this STFT."""
    if not hasattr(model, "forward_stateful"):
        raise UserError(
            f"model {getattr(model, 'name', type(model).__name__)!r} has no streaming "
            "mode; stream a causal 'lite' model"
        )
    if not getattr(model, "causal", False):
        raise UserError(
            "LiteConfig.causal=False: this model looks ahead in time and cannot stream; "
            "use a model built and trained with causal=True"
        )
    n_fft, hop = stft.n_fft, stft.hop_length
    if n_fft % 2 or (n_fft // 2) % hop:
        raise UserError(
            f"StftConfig(n_fft={n_fft}, hop_length={hop}): streaming needs half the "
            "window to be a whole number of hops (e.g. 512/256 or 512/128)"
        )


class StreamingEnhancer:
    """`process(hop)` -> enhanced hop, `reset()` between signals; see the module docstring."""

    def __init__(self, model: nn.Module, stft: StftConfig) -> None:
        check_streamable(model, stft)
        n_fft, hop = stft.n_fft, stft.hop_length
        self.model = model.eval()
        self.stft = stft
        # A PyTorch model runs where its weights are; an ONNX step (common.onnx_stream) on CPU.
        params = model.parameters() if isinstance(model, nn.Module) else iter(())
        self.device = next(params, torch.zeros(0)).device
        self.window = _padded_window(stft).to(self.device)
        self.latency_samples = n_fft - hop
        # Offline frame 0 is centred on sample 0; the stream's first frames end earlier and
        # have no offline counterpart, so they only fill the input buffer.
        self.frames_before_first = n_fft // (2 * hop) - 1
        self.reset()

    def reset(self) -> None:
        n_fft = self.stft.n_fft
        self.inputs = torch.zeros(n_fft, device=self.device)
        self.overlap = torch.zeros(n_fft, device=self.device)
        self.envelope = torch.zeros(n_fft, device=self.device)
        self.state = self.model.init_state(1, self.device)
        self.calls = 0

    @torch.inference_mode()
    def process(self, hop: np.ndarray) -> np.ndarray:
        """One hop (`hop_length` samples, float) in, one enhanced hop out (delayed, see above)."""
        n_fft, n_hop = self.stft.n_fft, self.stft.hop_length
        samples = np.asarray(hop, dtype=np.float32).reshape(-1)
        if samples.shape[0] != n_hop:
            raise UserError(
                f"StreamingEnhancer.process: got {samples.shape[0]} samples, expected exactly "
                f"hop_length={n_hop}; buffer the input into hops"
            )
        self.inputs = torch.cat([self.inputs[n_hop:], torch.from_numpy(samples).to(self.device)])
        if self.calls >= self.frames_before_first:
            spec = torch.fft.rfft(self.inputs * self.window).reshape(1, -1, 1)
            out, self.state = self.model.forward_stateful(spec, self.state)
            frame = torch.fft.irfft(out.reshape(-1), n=n_fft) * self.window
            self.overlap += frame
            self.envelope += self.window.square()
        # The first hop of the buffer is now complete: no later frame reaches back into it.
        ready, env = self.overlap[:n_hop], self.envelope[:n_hop]
        result = torch.where(env > 1e-11, ready / env.clamp_min(1e-11), torch.zeros_like(ready))
        zeros = torch.zeros(n_hop, device=self.device)
        self.overlap = torch.cat([self.overlap[n_hop:], zeros])
        self.envelope = torch.cat([self.envelope[n_hop:], zeros])
        start = (self.calls + 1) * n_hop - n_fft  # offline index of result[0]
        self.calls += 1
        if start < 0:
            result[: min(-start, n_hop)] = 0.0  # before the signal began
        return result.cpu().numpy()

    def process_signal(self, wav: np.ndarray) -> np.ndarray:
        """Stream a whole signal from a fresh state; returns it latency-compensated, same length."""
        self.reset()
        wav = np.asarray(wav, dtype=np.float32).reshape(-1)
        n_hop = self.stft.hop_length
        total = len(wav) + self.latency_samples
        padded = np.zeros(-(-total // n_hop) * n_hop, dtype=np.float32)
        padded[: len(wav)] = wav
        out = np.concatenate(
            [self.process(padded[i : i + n_hop]) for i in range(0, len(padded), n_hop)]
        )
        return out[self.latency_samples : self.latency_samples + len(wav)]


class StreamingBackend:
    """The model one frame at a time, carrying its state: a `SpectralBackend` (common.enhance)
    for `enhance --streaming`; the model sees exactly what `StreamingEnhancer` gives it."""

    device = "cpu (streaming)"
    causal = True
    carries_state = True

    def __init__(self, model: nn.Module, stft: StftConfig) -> None:
        check_streamable(model, stft)
        self.model = model.cpu().eval()
        self.stft = stft
        self.model_name = str(getattr(model, "name", type(model).__name__))
        self.state: list | None = None

    def reset(self) -> None:
        self.state = None

    @torch.inference_mode()
    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        if self.state is None:
            self.state = self.model.init_state(spec.shape[0])
        frames = []
        # One thread, as a real-time stream runs: ops on one frame are too small to split, and
        # on a busy machine extra threads made each frame 50x slower (40 ms instead of 0.7 ms).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for t in range(spec.shape[-1]):
                out, self.state = self.model.forward_stateful(spec[..., t : t + 1], self.state)
                frames.append(out)
        finally:
            torch.set_num_threads(threads)
        return torch.cat(frames, dim=-1).to(torch.complex64)
