"""Training throughput of the default recipe against a bare BiLSTM's forward and backward pass timed
in the same run (the yardstick of issue #7): tokens/s of `adelabel train`'s epoch loop (sampling,
batching, word dropout, forward, loss, backward, clipping, Adam) over N sentences drawn at random
from an epoch's sample (a third of them annotated, the rest ADE-NEG, as in a whole epoch), as a
ratio to torch fp32 `nn.LSTM(200, 200, bidirectional=True)` forward + backward on batches of 64 x 30
tokens, 2 threads.

    python benchmarks/train_speed.py --data data --sentences 3000 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adelabel.config import resolve  # noqa: E402
from adelabel.data import bucketed  # noqa: E402
from adelabel.distributed import Loss  # noqa: E402
from adelabel.precision import grad_scaler  # noqa: E402
from adelabel.train import epoch_generator, epoch_sample, load_data, run_epoch  # noqa: E402
from adelabel.vocab import UNK  # noqa: E402


def bare_tokens_per_second(seconds: float = 5.0) -> float:
    lstm = torch.nn.LSTM(200, 200, bidirectional=True, batch_first=True)
    x = torch.randn(64, 30, 200)
    for _ in range(3):
        lstm(x)[0].sum().backward()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        lstm(x)[0].sum().backward()
        n += 1
    return n * 64 * 30 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--arch", default="bilstm")
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = resolve(args.arch)
    data = load_data(cfg, args.data)
    device = torch.device("cpu")
    rates, bares = [], []
    for repeat in range(args.repeats):
        bares.append(bare_tokens_per_second())
        torch.manual_seed(cfg.seed)
        model = data.task.build(cfg, vocab_size=len(data.vocabs.words), char_vocab_size=len(data.vocabs.chars),
                                embedding_dim=data.matrix.shape[1], vectors=data.matrix)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr, fused=True)
        gen = epoch_generator(cfg.seed, 1)
        sample = epoch_sample(data.examples["train"], data.task.negatives["train"], cfg.train.negative_fraction,
                              gen)
        # A random share of the epoch, with its mix of annotated and ADE-NEG sentences (the sample
        # lists the annotated ones first).
        sample = [sample[i] for i in torch.randperm(len(sample), generator=gen)[:args.sentences].tolist()]
        tokens = sum(len(e.words) for e in sample)
        start = time.perf_counter()
        batches = [b for _, b in bucketed(sample, cfg.train.batch_size, shuffle=True, generator=gen)]
        run_epoch(Loss(model), model, optimizer, grad_scaler(device, "fp32"), batches, cfg,
                  epoch_generator(cfg.seed, 1, 1), data.vocabs.words[UNK], device, lambda n, total: None)
        seconds = time.perf_counter() - start
        rates.append(tokens / seconds)
        print(f"run {repeat + 1}: {len(sample) / seconds:,.0f} sentences/s, {tokens / seconds:,.0f} tokens/s; "
              f"bare BiLSTM forward+backward {bares[-1]:,.0f} tokens/s; ratio {tokens / seconds / bares[-1]:.2f}",
              flush=True)
    print(f"median: {statistics.median(rates):,.0f} tokens/s against {statistics.median(bares):,.0f}: "
          f"ratio {statistics.median(rates) / statistics.median(bares):.2f}")


if __name__ == "__main__":
    main()
