"""Frame-by-frame enhancement with a causal model: one hop of samples in, one hop out.

The stream keeps three pieces of history between calls: the last `n_fft` input samples, the
model's own state (conv cache, GRU states; see `LiteNet.forward_stateful`) and the overlap-add
buffer of the inverse STFT together with its window-energy envelope.

Definition of "the same as offline": output sample m of the stream equals sample m - D of
`istft(model(stft(x)))` with D = `latency_samples` = n_fft - hop (the first D samples are 0).
It is exact up to float rounding when the clip starts with n_fft // 2 + 1 zero samples, because
`torch.stft(center=True)` reflects the first half window into negative time, which a stream
cannot know before those samples arrive; elsewhere only the first frames see different input.
Algorithmic latency is that delay plus the hop being collected: n_fft samples (32 ms at 512).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from common.audio import StftConfig, resample
from common.errors import UserError


def algorithmic_latency_ms(stft: StftConfig, lookahead_frames: int = 0) -> float:
    """Delay from a sample entering to its enhanced version leaving: the frame plus look-ahead."""
    return 1000.0 * (stft.n_fft + lookahead_frames * stft.hop_length) / stft.sample_rate


def _padded_window(stft: StftConfig) -> torch.Tensor:
    # torch.stft centres a shorter window inside n_fft; the stream frames must match that.
    win = stft.window_tensor()
    left = (stft.n_fft - len(win)) // 2
    return nn.functional.pad(win, (left, stft.n_fft - len(win) - left))


class StreamingEnhancer:
    """`process(hop)` -> enhanced hop, `reset()` between signals; see the module docstring."""

    def __init__(self, model: nn.Module, stft: StftConfig) -> None:
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
        self.model = model.eval()
        self.stft = stft
        self.device = next(model.parameters()).device
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


class StreamingFileEnhancer:
    """`enhance(wav, sr)` through the frame-by-frame path, for `enhance --streaming`.

    Same contract as `common.enhance.Enhancer`: (N,) or (N, channels) at any rate in, the same
    shape and rate out; each channel is streamed from a fresh state.
    """

    device = "cpu (streaming)"

    def __init__(self, model: nn.Module, stft: StftConfig) -> None:
        self.streamer = StreamingEnhancer(model, stft)
        self.stft = stft
        self.model_name = getattr(model, "name", type(model).__name__)

    def enhance(self, wav: np.ndarray, sr: int) -> np.ndarray:
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim == 2:
            return np.ascontiguousarray(np.stack([self.enhance(c, sr) for c in wav.T], axis=1))
        if not np.all(np.isfinite(wav)):
            raise UserError(
                "enhance: input has NaN or infinite samples; fix or re-export the audio"
            )
        x = resample(wav, sr, self.stft.sample_rate)
        with torch.no_grad():
            y = self.streamer.process_signal(x)
        y = resample(y, self.stft.sample_rate, sr)
        return y[: len(wav)] if len(y) >= len(wav) else np.pad(y, (0, len(wav) - len(y)))
