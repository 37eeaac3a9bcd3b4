"""Settings of the training stages (`dictionary`, `baseline`, `train_bert`, `pretrain`).

They live apart from the classifiers so that checking params.yaml (pipeline/config.py) never has to
import torch or scikit-learn: `python -m pipeline` checks every section before any command.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config import Settings, SettingsError, build_settings, setting

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SEED_MAX = 2**32 - 1  # numpy and torch take seeds in [0, 2**32)


def check_heads(hidden_size: int, num_heads: int) -> None:
    """Attention splits the hidden size evenly across the heads."""
    if hidden_size % num_heads:
        raise SettingsError("hidden_size", f"{hidden_size} is not a multiple of num_heads ({num_heads})",
                            f"a multiple of num_heads, e.g. {64 * num_heads} with {num_heads} heads")


@dataclass
class DictionarySettings(Settings):
    """The dictionary method has no settings: the codebook is the model (params.yaml `dictionary: {}`)."""


@dataclass
class BaselineSettings(Settings):
    """TF-IDF + logistic regression (classifiers/tfidf.py)."""

    char_ngrams: list[int] = setting([1, 3], ge=1)  # [shortest, longest] character n-gram
    word_ngrams: list[int] = setting([1, 2], ge=1)  # [shortest, longest] jieba word n-gram
    min_df: int = setting(2, ge=1)  # an n-gram in fewer training paragraphs is dropped
    max_features: int = setting(200_000, ge=1)
    C: float = setting(1.0, gt=0)  # inverse regularisation strength
    threshold_ceiling: float = setting(0.4, gt=0, le=1)  # highest per-theme threshold dev tuning may pick
    context_weight: float = setting(0.3, ge=0, le=10)  # of the title + headings block (word n-grams); 0: text only
    context_dropout: float = setting(0.5, ge=0, lt=1)  # share of training rows fitted without their context
    calibration_folds: int = setting(5, ge=0, le=20)  # real train scored out of fold for calibration; 0: real dev only
    seed: int = setting(0, ge=0, le=SEED_MAX)

    def __post_init__(self):
        super().__post_init__()
        for key in ("char_ngrams", "word_ngrams"):
            value = getattr(self, key)
            if len(value) != 2 or value[0] > value[1]:
                raise SettingsError(key, f"{value} is no n-gram range", "[shortest, longest], e.g. [1, 3]")


@dataclass
class ScratchSettings(Settings):
    """Architecture and vocabulary of `base_model: scratch` (tests, experiments) and of `distill`'s student."""

    hidden_size: int = setting(128, ge=1)
    num_layers: int = setting(2, ge=1)
    num_heads: int = setting(4, ge=1)
    intermediate_size: int = setting(512, ge=1)
    max_position_embeddings: int = setting(512, ge=8)
    dropout: float = setting(0.1, ge=0, lt=1)
    vocab_min_freq: int = setting(1, ge=1)  # characters (and words) seen fewer times are left out
    vocab_max_size: int = setting(8000, ge=1)  # most frequent characters (then words) kept, special tokens included
    # chars: one token per character | words: jieba words of the training texts too
    # (bert.build_word_tokenizer; ~0.6 tokens a character)
    vocabulary: str = setting("chars", choices=("chars", "words"))

    def __post_init__(self):
        super().__post_init__()
        check_heads(self.hidden_size, self.num_heads)


@dataclass
class TrainLoopSettings(Settings):
    """What a Trainer run here takes (fine-tuning)."""

    max_length: int = setting(256, ge=8)  # tokens per chunk, [CLS] and [SEP] included
    learning_rate: float = setting(5e-4, gt=0, le=1)  # right for scratch; use ~3e-5 for a pretrained checkpoint
    epochs: float = setting(8, gt=0)
    batch_size: int = setting(16, ge=1)  # per device; small batches give the scratch model the steps it needs
    grad_accum: int = setting(1, ge=1)
    warmup_ratio: float = setting(0.1, ge=0, le=1)
    weight_decay: float = setting(0.01, ge=0)
    seed: int = setting(42, ge=0, le=SEED_MAX)
    precision: str = setting("auto", choices=PRECISIONS)  # auto | bf16 | fp16 | fp32
    torch_compile: bool = False
    eval_batch_size: int = setting(128, ge=1)  # chunks per batch when evaluating and scoring
    live_dir: str = ""  # dvclive curves; empty: none
    checkpoint_dir: str = setting("models/.checkpoints", nonempty=True)  # Trainer's epoch checkpoints, removed after


@dataclass
class BertSettings(TrainLoopSettings):
    live_dir: str = "dvclive/train_bert"
    checkpoint_dir: str = setting("models/.bert_checkpoints", nonempty=True)
    # scratch (tiny, character vocabulary) | a local HF checkpoint dir (the shipped pretrained encoder) | a hub name
    base_model: str = setting("scratch", nonempty=True)
    revision: str = ""  # with a hub name: the commit (or tag) to load; the commit used goes to model.json
    max_steps: int = setting(0, ge=0)  # optimizer steps at most (0: `epochs` decide)
    max_minutes: float = setting(0, ge=0)  # training time at most (0: no limit); ends with a dev evaluation
    cpu_threads: int = setting(0, ge=0)  # torch threads on CPU for training and scoring (0: torch's default)
    # scoring on CPU: auto (bf16 where the CPU computes it natively, else fp32) | fp32 | bf16 | int8 (dynamic
    # quantisation of the Linear layers); docs/benchmarks.md has the speed and score differences
    cpu_inference: str = setting("auto", choices=("auto", "fp32", "bf16", "int8"))
    stride: int = setting(64, ge=0)  # tokens shared by consecutive chunks of a long paragraph
    early_stopping_patience: int = setting(3, ge=0)  # epochs without a better dev macro-F1; 0: train all epochs
    threshold_ceiling: float = setting(0.9, gt=0, le=1)  # highest per-theme threshold dev tuning may pick
    scratch: ScratchSettings = field(default_factory=ScratchSettings)

    def __post_init__(self):
        super().__post_init__()
        if self.stride >= self.max_length - 2:
            raise SettingsError("stride", f"{self.stride} leaves no new text per chunk of max_length "
                                f"{self.max_length}", f"an integer below max_length - 2 ({self.max_length - 2})")
        if self.base_model == "scratch" and self.scratch.max_position_embeddings < self.max_length:
            raise SettingsError("max_length", f"{self.max_length} is longer than scratch.max_position_embeddings "
                                f"({self.scratch.max_position_embeddings})",
                                "at most scratch.max_position_embeddings, or raise that")


@dataclass
class PretrainArchitecture(Settings):
    """A new pretrained model's shape (ignored with `init_from`, whose own config is used)."""

    num_layers: int = setting(4, ge=1)
    hidden_size: int = setting(256, ge=8)
    num_heads: int = setting(4, ge=1)
    intermediate_size: int = setting(1024, ge=8)
    dropout: float = setting(0.1, ge=0, lt=1)
    initializer_range: float = setting(0.02, gt=0, le=1)

    def __post_init__(self):
        super().__post_init__()
        check_heads(self.hidden_size, self.num_heads)


@dataclass
class PretrainSettings(Settings):
    """`python -m pipeline pretrain` (pipeline/pretrain.py): MLM pretraining, not a default DAG stage."""

    corpus: str = setting("build/pretrain_corpus", nonempty=True)  # train.jsonl + heldout.jsonl (scripts/build_pretrain_corpus.py)
    vocab: str = setting("../shared/models/chinese-bert-vocab/vocab.txt", nonempty=True)  # the standard Chinese BERT vocab
    init_from: str = ""  # a Chinese BERT checkpoint (directory or hub name) to continue; empty: a new model
    revision: str = ""  # with a hub name: the commit to use (empty: the default branch)
    name: str = setting("zh-political-bert-mini", nonempty=True)  # recorded in the model card
    out_dir: str = setting("models/pretrained/zh-political-bert-mini", nonempty=True)
    checkpoint_dir: str = setting("models/.pretrain_checkpoint", nonempty=True)
    live_dir: str = "dvclive/pretrain"  # curves; empty: none
    architecture: PretrainArchitecture = field(default_factory=PretrainArchitecture)
    max_length: int = setting(256, ge=8, le=4096)  # tokens per packed sequence, [CLS] and [SEP] included
    batch_size: int = setting(32, ge=1)  # sequences per optimizer step
    learning_rate: float = setting(5e-4, gt=0, le=1)
    warmup_steps: int = setting(200, ge=0)
    weight_decay: float = setting(0.01, ge=0)
    max_steps: int = setting(2000, ge=1)  # the learning rate decays linearly to 0 over these
    max_minutes: float = setting(0, ge=0)  # stop (and export) after this long; 0: no limit
    mlm_probability: float = setting(0.15, gt=0, lt=1)
    eval_sequences: int = setting(256, ge=0)  # held-out sequences for the MLM curves
    eval_every_steps: int = setting(100, ge=1)
    save_every_steps: int = setting(200, ge=1)
    precision: str = setting("auto", choices=("auto", "bf16", "fp32"))  # auto: bf16 where the device has it
    torch_compile: str = setting("auto", choices=("auto", "on", "off"))  # auto: on CUDA
    threads: int = setting(0, ge=0)  # CPU torch threads; 0: torch's default
    loader_workers: int = setting(-1, ge=-1)  # data-loader processes; -1: CUDA up to 8, CPU 0
    seed: int = setting(42, ge=0, le=SEED_MAX)


def bert_settings(params: dict | None, where: str = "params.yaml:bert") -> BertSettings:
    return build_settings(BertSettings, params, where)


@dataclass
class DistillSettings(Settings):
    """`python -m pipeline distill` (pipeline/distill.py): the TF-IDF model teaches a BERT on unlabeled real
    paragraphs; not a default DAG stage. The student's shape is `student`; its training loop is `bert`'s."""

    paragraphs: list[str] = setting(["examples/real/rmrb/data/interim/paragraphs.parquet",
                                     "examples/real/xwlb/data/interim/paragraphs.parquet",
                                     "examples/real/reports/data/interim/paragraphs.parquet"], nonempty=True)
    teacher: str = setting("models/baseline", nonempty=True)  # a saved model directory (model.json)
    splits_dir: str = setting("data/processed", nonempty=True)  # train rows join in; real dev keeps the best pass
    min_chars: int = setting(20, ge=1)
    max_chars: int = setting(800, ge=1)
    min_chinese_share: float = setting(0.5, ge=0, le=1)  # of a paragraph's characters
    relevant_score: float = setting(0.02, gt=0, lt=1)  # every paragraph the teacher gives some theme this much is kept
    negatives: int = setting(40_000, ge=0)  # paragraphs drawn from the rest: what no theme looks like
    max_steps: int = setting(20_000, ge=1)
    batch_size: int = setting(32, ge=1)
    learning_rate: float = setting(5e-4, gt=0, le=1)
    name: str = setting("zh-political-bert-distilled", nonempty=True)  # recorded in the model card
    out_dir: str = setting("models/pretrained/zh-political-bert-distilled", nonempty=True)
    checkpoint_dir: str = setting("models/.distill_checkpoints", nonempty=True)
    live_dir: str = "dvclive/distill"  # curves; empty: none
    seed: int = setting(42, ge=0, le=SEED_MAX)
    student: ScratchSettings = field(default_factory=ScratchSettings)

    def __post_init__(self):
        super().__post_init__()
        if self.min_chars > self.max_chars:
            raise SettingsError("min_chars", f"{self.min_chars} is above max_chars ({self.max_chars})",
                                "a length at most max_chars, e.g. 20")
