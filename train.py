"""Train a model (srcnn.models) for every upscale factor, on photos that ship inside Python packages.

    python train.py                                  # the tutorial's model: outputs/srcnn_dynamic.pth, as shipped
    python train.py --model factor-aware             # outputs/srcnn_factor_aware.pth, as shipped
    python train.py --out weights/srcnn_dynamic.pth  # replaces the shipped weights (only when asked)
    python train.py --steps 2000 --out /tmp/quick.pth
    python train.py --device cuda --steps 400000     # on a GPU (bfloat16 where the card has it)

Each batch draws one factor (from 2, 2.25, ..., 4; from 1.25 for a model that sees the factor) and cuts patches from 19
photos that ship inside scikit-image, scikit-learn, matplotlib and PyWavelets (srcnn.sampler: flat ones redrawn, rotated
and flipped, a quarter of them blurred first so that the model also sees pictures that were never sharp, degraded with
antialiased bicubic downsampling, upsampled by the model's own Resize, cropped away from the borders), so the three
convolutions, where the weights and the time are, train on one (batch, 3, patch, patch) tensor in channels_last. The
tutorial's network starts as the identity on its bicubic input (identity_init), so training begins at bicubic quality
and learns the correction; the factor-aware one starts as the tutorial's trained network, its x2 weights as a teacher's
(the tutorial's network trained further at x2 alone, first: --teacher-steps). The loss (srcnn.losses) is log(MSE) per
patch with a floor of half an 8-bit level, so a patch that bicubic already gets right (a soft one) still counts. Batches
are small (8), for many steps. What is validated and kept is a moving average of the weights; of its checkpoints, the
one with the best mean Y-PSNR on the validation photos among those that lose at most 1 dB on their soft copies is kept.
srcnn.recipe lists every option; docs/training.md measures each, round by round.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

import srcnn.startup  # noqa: F401, I001 - first: a signal while the libraries load exits quietly
import srcnn_dynamic as sd
from srcnn import data
from srcnn.errors import run_guarded
from srcnn.images import atomic_path
from srcnn.losses import Loss, loss_function
from srcnn.models import MODELS, TUTORIAL_MODEL, model_kind
from srcnn.plan import check_output_file
from srcnn.pytorch import model_halo
from srcnn.recipe import RECIPE, Recipe, recipe_for
from srcnn.sampler import PatchSampler, centre_crop
from srcnn.weights import save_state_dict

log = logging.getLogger("train")

OUT_FOLDER = Path("outputs")  # --out's default is the model's weights file name here: a try never replaces the
# shipped weights unless asked to
WEIGHTS_SUFFIXES = (".pth", ".pt")  # --out must end in one: `--out train.py` would replace a source file
STEPS = 54_000  # the default run: 45 to 55 minutes on a 2-core CPU (docs/training.md names it)
# the factor-aware model's default run: it starts from the tutorial's trained network, and each step costs more
CONDITIONED_STEPS = 18_000
# before it, the teachers: the tutorial's network trained further at each of these anchors alone, whose weights then
# start the blend's set there. x2 is the anchor the blend serves least (a drawn factor gives it 29 % of the blend),
# and the one whose specialist gains the most (docs/training.md); with the blend, about an hour on a 2-core CPU
TEACHER_FACTORS = (2.0,)
TEACHER_STEPS = 24_000
MAX_BATCH_SIZE = 4096  # 64x64 patches: about 2 GB of activations at this size; beyond it, memory runs out
LEARNING_RATE = 3e-4  # Adam, cosine-decayed to LEARNING_RATE * FINAL_LR_FRACTION; 1e-3: 0.19 dB less (docs/training.md)
FINAL_LR_FRACTION = 0.01
MAX_LEARNING_RATE = 0.1  # --learning-rate: far above any that trains this model; beyond it, a typo
LOW_EVAL_FACTORS = ("1.5",)  # validated too when a recipe trains on it: where the tutorial's model over-sharpens
VALIDATE_EVERY = 2_000  # steps between validations (each takes a few seconds)
PASS_THROUGH_OFFSET = 1.0  # identity_init: bias that keeps slightly negative bicubic overshoot above ReLU's 0
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs that compute bfloat16 in hardware
MAX_SEED = 2**64 - 1  # torch.manual_seed takes seeds up to this (numpy's generators take any size)


def identity_init(model: sd.SuperResolutionNet, offset: float = PASS_THROUGH_OFFSET) -> None:
    """Make the network output its bicubic input exactly, keeping the other weights as initialised.

    conv1 copies the three input channels into its first three channels (plus `offset`, so values down to
    -offset survive the ReLU), conv2 copies those three on, and conv3 copies them back and subtracts `offset`.
    conv3's weights from the other 29 channels start at zero, so they add nothing until training moves them.
    """
    with torch.no_grad():
        model.conv3.weight.zero_()  # all of conv3, so the 29 other channels add nothing at first
        for conv in (model.conv1, model.conv2, model.conv3):
            centre_h, centre_w = conv.kernel_size[0] // 2, conv.kernel_size[1] // 2
            for c in range(3):
                conv.weight[c].zero_()
                conv.weight[c, c, centre_h, centre_w] = 1.0
        model.conv1.bias[:3] = offset
        model.conv2.bias[:3] = 0.0
        model.conv3.bias[:] = -offset


@torch.inference_mode()
def psnr_per_factor(model: torch.nn.Module, photos: list[torch.Tensor],
                    factors: tuple[str, ...] = data.EVAL_FACTORS) -> dict[str, float]:
    """Mean Y-PSNR (dB) of the model over `photos` at each of `factors`, keyed by factor tag."""
    result = {}
    for factor in map(sd.Factor.parse, factors):
        values = []
        for photo in photos:
            lr, hr = data.make_pair(photo, factor)
            values.append(data.psnr_y(hr, model(lr, factor.tensor()), factor))
        result[factor.tag] = float(np.mean(values))
    return result


def validation_factors(recipe: Recipe) -> tuple[str, ...]:
    """The evaluation factors within the range the recipe trains on (x2 to x4 for the tutorial's recipe, and x1.5
    too for the factor-aware model's)."""
    trained = tuple(f for f in LOW_EVAL_FACTORS + data.EVAL_FACTORS
                    if min(recipe.factors) <= float(f) <= max(recipe.factors))
    return trained or data.EVAL_FACTORS  # a recipe between two evaluation factors: judged on all of them


def cpu_computes_bfloat16() -> bool:
    """Whether this CPU has bfloat16 units (AMX or AVX512-BF16); without them bfloat16 is slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: assume not
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bfloat16 for the forward pass where the hardware computes it ("auto"), else None (float32)."""
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    has_bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_computes_bfloat16()
    return torch.bfloat16 if has_bf16 else None


def make_optimizer(model: torch.nn.Module, recipe: Recipe, learning_rate: float) -> torch.optim.Adam:
    """Adam, conv3 (the reconstruction layer) at last_layer_lr_scale times the others' learning rate."""
    last = list(model.conv3.parameters())
    others = [p for p in model.parameters() if all(p is not q for q in last)]
    return torch.optim.Adam([{"params": others, "lr": learning_rate},
                             {"params": last, "lr": learning_rate * recipe.last_layer_lr_scale}])


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A float32, contiguous copy of the weights on the CPU: what save_state_dict writes, whatever trains."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def train_step(
    refine: Callable[[torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
    targets: torch.Tensor, soft: torch.Tensor, loss_fn: Loss, half: torch.dtype | None,
) -> torch.Tensor:
    """One Adam step on a batch; the forward pass in `half` (None: float32), the loss and the weights in float32.

    The inputs may be larger than the targets (Recipe.full_context): the loss then sees the outputs' centre.
    """
    with torch.autocast(inputs.device.type, dtype=half or torch.float32, enabled=half is not None):
        outputs = refine(inputs)
    loss = loss_fn(centre_crop(outputs, targets.shape[3]).float(), targets, soft)  # the input's context cut off
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@dataclass
class TrainResult:
    """How a training run went: its best validation PSNR, where, from what start, and how long it took."""

    best_psnr: float
    best_step: int
    initial_psnr: float
    seconds: float
    history: list[tuple[int, float]]  # (step, validation Y-PSNR)
    # at each validation: its step, the mean Y-PSNR at each validation factor ("x2", ...) and on the soft case at
    # x2 ("soft x2": evaluate.py's, the validation photos blurred by data.SOFT_SIGMA first), for the run's record
    detail: list[dict[str, float]]
    precision: str  # "float32" or "bfloat16" (the forward pass; weights and validation are float32)
    bicubic: dict[str, float] = field(default_factory=dict)  # bicubic's figures, keyed as in `detail`


def start_from_tutorial(model: torch.nn.Module) -> None:
    """Load the tutorial's shipped weights into a model that has its three convolutions (and more, at rest); a model
    whose layers differ says how with a method of this name."""
    state = sd.load_state_dict(sd.DEFAULT_WEIGHTS)
    if hasattr(model, "start_from_tutorial"):
        model.start_from_tutorial(state)
        return
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(not name.startswith("conv") for name in missing), (missing, unexpected)


def start_from_teachers(model: torch.nn.Module, teachers: dict[float, Path]) -> None:
    """Each teacher's weights (a tutorial-shaped network trained at one factor) into the model's set for that factor."""
    if teachers and not hasattr(model, "start_anchor_from"):
        raise sd.SrcnnError(f"{type(model).__name__} has no per-factor weights for a teacher to start")
    for factor, path in teachers.items():
        model.start_anchor_from(factor, sd.load_state_dict(path))


def train(
    *, steps: int, out: Path, recipe: Recipe = RECIPE, seed: int = sd.SEED, learning_rate: float = LEARNING_RATE,
    model_name: str = "tutorial", from_tutorial: bool | None = None, teachers: dict[float, Path] | None = None,
    device: str = "cpu", precision: str = "auto", compile_model: bool = False,
    validation_photos: tuple[str, ...] = data.VALIDATION_PHOTOS, validate_every: int = VALIDATE_EVERY,
    max_soft_loss: float = data.SOFT_LOSS_LIMIT, progress: bool = True,
) -> TrainResult:
    """Train and write the best state dict to `out` when done: the best validation PSNR among the checkpoints that
    lose at most `max_soft_loss` dB on the soft case at x2 (the identity, at step 0, loses none).

    The tutorial's model starts as the identity (bicubic), any other from the tutorial's trained network
    (`from_tutorial` chooses otherwise), with `teachers` (factor -> weights file) in its sets for those factors.

    Validated and kept are the weights' moving average (recipe.ema_decay) or, with 0, the weights themselves. The
    weights' soft case swings by a decibel or more between checkpoints a few thousand steps apart, where the sharp gain
    moves by hundredths (docs/training.md, the sixth round), and even the average's moves by tenths, so the choice
    keeps the project's soft target at little cost; math.inf chooses by the sharp gain alone.
    """
    torch.manual_seed(seed)
    where = torch.device(device)
    kind = model_kind(model_name)
    if kind.conditioned and recipe.mix_factors:
        raise sd.SrcnnError(f"the {kind.name} model takes one factor per batch: mix_factors must be False")
    model = kind.build()
    from_identity = kind.tutorial if from_tutorial is None else not from_tutorial
    if from_identity:
        identity_init(model)  # bicubic at the start: training learns the correction
    else:
        start_from_tutorial(model)  # the tutorial's shipped network at the start: training learns what the factor adds
        start_from_teachers(model, teachers or {})
    context = model_halo(model) if recipe.full_context else 0
    sampler = PatchSampler([data.load_photo_tensor(n) for n in recipe.photos], recipe, seed, context)
    val_set = [data.load_photo_tensor(n) for n in validation_photos]
    soft_set = [data.gaussian_blur(photo, data.SOFT_SIGMA) for photo in val_set]  # evaluate.py's soft case
    val_factors = validation_factors(recipe)
    optimizer = make_optimizer(model, recipe, learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps,
                                                          eta_min=learning_rate * FINAL_LR_FRACTION)
    half = autocast_dtype(where, precision)
    loss_fn = loss_function(recipe)
    # channels_last: oneDNN's and cuDNN's fast layout for these convolutions (docs/training.md: 1.7x on the CPU)
    model.to(where, memory_format=torch.channels_last)
    compiled = torch.compile(model.refine) if compile_model else model.refine  # one input shape: compiled once
    # what is validated and kept: the model, or the average of its weights (a copy, updated after each step)
    average = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay)) if recipe.ema_decay
               else None)
    kept = model if average is None else average.module

    def evaluate_now(step: int, network: torch.nn.Module | None = None) -> tuple[float, float]:
        """(validation PSNR, soft x2 PSNR) of the kept weights, or of another `network`; each factor's figure
        recorded in `detail` (or, for another network, in `reference`). In float32 on the CPU, whatever trains:
        comparable figures."""
        cpu_model = copy.deepcopy(kept if network is None else network).float()
        cpu_model = cpu_model.to("cpu", memory_format=torch.contiguous_format).eval()
        sharp = psnr_per_factor(cpu_model, val_set, val_factors)
        soft = psnr_per_factor(cpu_model, soft_set, ("2",))["2"]
        entry = {f"x{tag}": v for tag, v in sharp.items()} | {"soft x2": soft}
        if network is None:
            detail.append({"step": step} | entry)
        else:
            reference.update(entry)
        return float(np.mean(list(sharp.values()))), soft  # the validation PSNR: the mean over factors and photos

    detail: list[dict[str, float]] = []
    reference: dict[str, float] = {}  # bicubic's figures, per factor and soft
    if from_identity:
        initial_psnr, initial_soft = evaluate_now(0)  # the identity: bicubic's PSNRs
        reference.update({k: v for k, v in detail[0].items() if k != "step"})
        start_psnr = initial_psnr
    else:
        bicubic = model_kind(TUTORIAL_MODEL).build()  # made the identity: bicubic itself
        identity_init(bicubic)
        initial_psnr, initial_soft = evaluate_now(0, bicubic)  # bicubic's PSNRs: what every gain is measured from
        start_psnr, _ = evaluate_now(0)  # the tutorial's network (and teachers), where this one starts
    best_psnr = start_psnr
    best_step, start, history = 0, time.perf_counter(), [(0, start_psnr)]
    best_state = cpu_state(kept)
    log.info("validation Y-PSNR at the start (bicubic): %.3f dB; forward pass in %s on %s", initial_psnr,
             "float32" if half is None else "bfloat16", where)
    bar = tqdm(range(1, steps + 1), desc="train", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    model.train()
    for step in bar:
        inputs, targets, soft, factors = sampler.batch()
        inputs, targets = (t.to(where, memory_format=torch.channels_last) for t in (inputs, targets))
        if kind.conditioned:  # one factor per batch (mix_factors is refused above)
            factor = sd.Factor(float(factors[0]), float(factors[0])).tensor(where)
            refine: Callable[[torch.Tensor], torch.Tensor] = functools.partial(compiled, factor=factor)
        else:
            refine = compiled
        loss = train_step(refine, optimizer, inputs, targets, soft.to(where), loss_fn, half)
        schedule.step()
        if average is not None:
            average.update_parameters(model)
        if step % validate_every == 0 or step == steps:
            psnr, soft_psnr = evaluate_now(step)
            history.append((step, psnr))
            if psnr > best_psnr and initial_soft - soft_psnr <= max_soft_loss:
                best_psnr, best_step = psnr, step
                best_state = cpu_state(kept)
            bar.set_postfix(loss=f"{loss.item():.2e}", val_psnr=f"{psnr:.3f}", best=f"{best_psnr:.3f}@{best_step}")
            log.debug("step %d: validation Y-PSNR %.3f dB", step, psnr)
    save_state_dict(best_state, out)  # atomically: an interrupted run leaves `out` as it was
    return TrainResult(best_psnr, best_step, initial_psnr, time.perf_counter() - start, history, detail,
                       "float32" if half is None else "bfloat16", reference)


def teacher_path(out: Path, factor: float) -> Path:
    """Where the teacher for `factor` goes: beside `out`, e.g. outputs/srcnn_factor_aware_x2_teacher.pth."""
    return out.with_name(f"{out.stem}_x{factor:g}_teacher{out.suffix}")


def train_teachers(*, steps: int, out: Path, recipe: Recipe, factors: tuple[float, ...] = TEACHER_FACTORS,
                   **options: object) -> dict[float, TrainResult]:
    """The teachers (ArbSR's transfer from scale-specific networks, in its cheapest form): for each factor, the
    tutorial's network trained further at that factor alone, with `recipe` otherwise, written to teacher_path."""
    results = {}
    for factor in factors:
        log.info("teacher for x%g: the tutorial's network, %d steps at x%g alone", factor, steps, factor)
        results[factor] = train(steps=steps, out=teacher_path(out, factor), recipe=dataclasses.replace(
            recipe, factors=(factor,)), model_name=TUTORIAL_MODEL, from_tutorial=True, **options)
        log.info("teacher for x%g: gain %+.3f dB at step %d; %.1f min", factor,
                 results[factor].best_psnr - results[factor].initial_psnr, results[factor].best_step,
                 results[factor].seconds / 60)
    return results


def machine_name(device: str) -> str:
    """The processor that trained: the GPU's name, or the CPU's model name from /proc/cpuinfo."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def write_history(path: Path, args: argparse.Namespace, recipe: Recipe, result: TrainResult,
                  teachers: dict[float, TrainResult]) -> None:
    """The run's record: what trained, on what, for how long, and its validation PSNR per step; its teachers' too."""
    record = {
        "command": "python train.py " + " ".join(sys.argv[1:]), "model": args.model, "steps": args.steps,
        "seed": args.seed,
        "learning_rate": args.learning_rate,
        "recipe": dataclasses.asdict(recipe), "device": machine_name(args.device), "threads": torch.get_num_threads(),
        "precision": result.precision, "torch": torch.__version__, "minutes": round(result.seconds / 60, 1),
        "best_step": result.best_step, "best_psnr": result.best_psnr, "initial_psnr": result.initial_psnr,
        "history": result.history, "detail": result.detail, "bicubic": result.bicubic,
        "teachers": [{"factor": factor, "steps": args.teacher_steps, "minutes": round(t.seconds / 60, 1),
                      "best_step": t.best_step, "best_psnr": t.best_psnr, "initial_psnr": t.initial_psnr,
                      "detail": t.detail} for factor, t in teachers.items()],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")
    except OSError as exc:  # a full disk, or a folder removed since the check: one line, as save_state_dict says it
        raise sd.SrcnnError(f"cannot write {path}: {exc.strerror or exc}; nothing was left half-written") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, every number and path checked (argparse's one-line errors, exit 2) before any work."""
    parser = sd.OneLineErrorParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, metavar="N",
                        help=f"Adam steps (default: {STEPS} for the tutorial's model, {CONDITIONED_STEPS} for the"
                        " factor-aware one)")
    parser.add_argument("--teacher-steps", type=int, default=TEACHER_STEPS, metavar="N",
                        help="a model with per-factor weights (factor-aware) first trains a teacher at "
                        + ", ".join(f"x{f:g}" for f in TEACHER_FACTORS) + " for N steps, whose weights start its"
                        " set there; 0: none (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=RECIPE.batch_size, metavar="N",
                        help=f"patches per step, 1 to {MAX_BATCH_SIZE} (default: %(default)s)")
    parser.add_argument("--model", choices=MODELS, default=TUTORIAL_MODEL,
                        help="; ".join(f"{kind.name}: {kind.about}" for kind in MODELS.values())
                        + " (default: %(default)s)")
    parser.add_argument("--out", type=Path, metavar="PATH",
                        help=f"where the best state dict goes (default: {OUT_FOLDER}/ and the model's weights file"
                        " name; the shipped weights are " + ", ".join(kind.weights for kind in MODELS.values())
                        + ", replaced only if named here)")
    parser.add_argument("--seed", type=int, default=sd.SEED, help="0 to 2**64 - 1 (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE, metavar="LR",
                        help="Adam's at the start, cosine-decayed to a hundredth; above 0, at most 0.1 (default:"
                        " %(default)s)")
    parser.add_argument("--ema-decay", type=float, default=RECIPE.ema_decay, metavar="D",
                        help="validate and keep a moving average of the weights, from 0 (the weights themselves: better"
                        " for a short run, which the average lags) to below 1 (default: %(default)s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default: %(default)s)")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="of the forward pass; auto: bfloat16 where the CPU (AMX, AVX512-BF16) or GPU computes it"
                        " (default: %(default)s)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the convolutions (docs/training.md)")
    parser.add_argument("--history", type=Path, metavar="PATH",
                        help="also write the run's record (validation PSNR per step, also per factor and on the soft"
                        " case; recipe, machine) as JSON, for tools/plot_training.py")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, with tracebacks")
    args = parser.parse_args(argv)
    args.out = args.out or OUT_FOLDER / model_kind(args.model).weights_path.name
    if args.steps is None:
        args.steps = CONDITIONED_STEPS if model_kind(args.model).conditioned else STEPS
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: must be at least 1")
    if args.teacher_steps < 0:
        parser.error(f"--teacher-steps {args.teacher_steps}: must be 0 (no teacher) or more")
    if not model_kind(args.model).conditioned:
        args.teacher_steps = 0  # the tutorial's model has one set of weights: nothing for a teacher to start
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        parser.error(f"--batch-size {args.batch_size}: must be from 1 to {MAX_BATCH_SIZE}")
    if not 0 <= args.seed <= MAX_SEED:  # torch.manual_seed refuses the rest, after the data has loaded
        parser.error(f"--seed {args.seed}: must be 0 or more, and at most 2**64 - 1 ({MAX_SEED})")
    if not 0 < args.learning_rate <= MAX_LEARNING_RATE:  # also refuses nan
        parser.error(f"--learning-rate {args.learning_rate}: must be above 0 and at most {MAX_LEARNING_RATE}")
    if not 0 <= args.ema_decay < 1:  # also refuses nan
        parser.error(f"--ema-decay {args.ema_decay}: must be from 0 to below 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda: PyTorch {torch.__version__} sees no CUDA GPU")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")

    def work() -> int:
        check_output_file(args.out, "--out", suffixes=WEIGHTS_SUFFIXES)  # fail now, not after an hour of training
        teacher_files = [teacher_path(args.out, f) for f in TEACHER_FACTORS] if args.teacher_steps else []
        for path in teacher_files:
            check_output_file(path, "the teacher's weights", [args.out], suffixes=WEIGHTS_SUFFIXES)
        if args.history:
            check_output_file(args.history, "--history", [args.out, *teacher_files], suffixes=(".json",))
        recipe = dataclasses.replace(recipe_for(model_kind(args.model), RECIPE), batch_size=args.batch_size,
                                     ema_decay=args.ema_decay)
        log.info("training on %d photos, validating on %s; torch threads: %d", len(recipe.photos),
                 ", ".join(data.VALIDATION_PHOTOS), torch.get_num_threads())
        options = dict(seed=args.seed, learning_rate=args.learning_rate, device=args.device,
                       precision=args.precision, compile_model=args.compile)
        teachers = (train_teachers(steps=args.teacher_steps, out=args.out, recipe=recipe, **options)
                    if args.teacher_steps else {})
        result = train(steps=args.steps, out=args.out, recipe=recipe, model_name=args.model,
                       teachers={f: teacher_path(args.out, f) for f in teachers}, **options)
        log.info("best validation Y-PSNR %.3f dB at step %d (bicubic %.3f dB, gain %+.3f dB); %.1f min; wrote %s",
                 result.best_psnr, result.best_step, result.initial_psnr, result.best_psnr - result.initial_psnr,
                 result.seconds / 60, args.out)
        if args.history:
            write_history(args.history, args, recipe, result, teachers)
        return sd.EXIT_OK

    return run_guarded(work)


if __name__ == "__main__":
    sys.exit(main())
