"""``vlagent finetune``: it really learns, resumes exactly, freezes exactly, exports where
``vlagent index`` loads, and counts the titles the text context cuts."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch

from fixtures_data import draw_product
from vlagent.data.annotations import read_annotations
from vlagent.data.images import open_source
from vlagent.finetune.data import Pair, Split, match_pairs, split_pairs
from vlagent.finetune.freeze import FreezeSpec
from vlagent.finetune.metrics import heldout_recall
from vlagent.finetune.towers import towers_for
from vlagent.finetune.train import FinetuneConfig, ResumeMismatch, finetune
from vlagent.models.clip import load_clip_encoder

#: colour and category words of the synthetic catalogue (all in the tiny vocabulary)
COLOURS = {"红": (220, 20, 30), "蓝": (30, 60, 200), "黄": (240, 200, 20), "绿": (20, 160, 60),
           "紫": (130, 40, 170), "灰": (128, 128, 128)}  # fmt: skip
KINDS = {"dress": "连衣裙", "trousers": "长裤", "hat": "棒球帽", "bag": "手提包"}


@pytest.fixture(scope="module")
def ft_catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """96 drawings: 6 colours x 4 product kinds x 4 variants (size, colour jitter); title = colour + kind."""
    root = tmp_path_factory.mktemp("ft_catalogue")
    folder = root / "image"
    folder.mkdir()
    rng = random.Random(0)
    rows = []
    for word, rgb in COLOURS.items():
        for kind, noun in KINDS.items():
            for v in range(4):
                colour = tuple(max(0, min(255, x + rng.randint(-20, 20))) for x in rgb)
                side = rng.randint(40, 64)
                name = f"{kind}_{word}_{v}.png"
                draw_product(kind, colour, (side, side)).save(folder / name)  # type: ignore[arg-type]
                rows.append((name, f"{word}色{noun}"))
    csv_path = root / "train_annotation.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("image", "title"), *rows])
    return folder, csv_path


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _split(ft_catalogue: tuple[Path, Path]) -> Split:
    folder, csv_path = ft_catalogue
    with open_source(folder) as source:
        pairs = match_pairs(read_annotations(csv_path), source)
    assert not pairs.missing and len(pairs.pairs) == 96
    return split_pairs(pairs.pairs, val_fraction=0.25, seed=0)


def _towers(tiny_clip, family: str = "chinese_clip"):
    model, pretrained = tiny_clip[family]
    encoder = load_clip_encoder(model, pretrained, device="cpu", batch_size=32)
    return towers_for(encoder, model, pretrained)


def test_split_is_by_image_seeded_and_disjoint(ft_catalogue) -> None:
    a, b = _split(ft_catalogue), _split(ft_catalogue)
    assert a == b
    train_images, val_images = {p.image for p in a.train}, {p.image for p in a.val}
    assert not train_images & val_images
    assert len(val_images) == 24 and len(train_images) == 72


def test_finetuning_learns_and_keeps_the_best(tiny_clip, ft_catalogue, tmp_path: Path) -> None:
    split = _split(ft_catalogue)
    towers = _towers(tiny_clip)
    config = FinetuneConfig(epochs=40, batch_size=12, lr=5e-3, warmup_ratio=0.05, seed=0)
    with open_source(ft_catalogue[0]) as source:
        report = finetune(towers, source, split, tmp_path / "run", config, progress=False)
        print(f"held-out R@1 before {report.before.r1:.3f} best {report.best.r1:.3f} (epoch {report.best_epoch}) "
              f"last {report.after.r1:.3f} chance {report.chance_r1:.3f}; R@5 {report.before.r5:.3f} -> {report.best.r5:.3f}")  # fmt: skip
        assert report.best.r1 >= report.before.r1 + 0.15  # seeded: 0.125 -> 0.333
        assert report.best.r1 >= 3 * report.chance_r1  # chance 0.073
        assert report.best.r5 >= report.before.r5 + 0.3  # 0.250 -> 0.833
        assert report.kept == "finetuned" and report.best_epoch > 0
        # the kept model is written where `vlagent index` loads it, and it is the best epoch's
        best_dir = tmp_path / "run" / "best"
        assert report.export == {"VLAGENT_CLIP_MODEL": str(best_dir)}
        reloaded = load_clip_encoder(str(best_dir), device="cpu")
        again = heldout_recall(reloaded, source, split.val, config.max_pixels)
    assert again.key() == report.best.key()
    assert (tmp_path / "run" / "report.json").is_file()


def _run(tiny_clip, split, source, workdir: Path, config: FinetuneConfig, **kwargs):
    towers = _towers(tiny_clip)
    report = finetune(towers, source, split, workdir, config, progress=False, **kwargs)
    return towers, report


def test_an_interrupted_run_resumes_where_it_stopped(tiny_clip, ft_catalogue, tmp_path: Path) -> None:
    split = _split(ft_catalogue)
    config = FinetuneConfig(epochs=2, batch_size=12, lr=5e-3, seed=0)  # 6 steps an epoch
    steps: list[int] = []

    def stop_at_8(step: int) -> None:
        steps.append(step)
        if step == 8:
            raise KeyboardInterrupt

    with open_source(ft_catalogue[0]) as source:
        full, full_report = _run(tiny_clip, split, source, tmp_path / "full", config)
        with pytest.raises(KeyboardInterrupt):
            _run(tiny_clip, split, source, tmp_path / "cut", config, on_step=stop_at_8)
        assert steps == list(range(1, 9))
        steps.clear()
        resumed, report = _run(tiny_clip, split, source, tmp_path / "cut", config, on_step=steps.append)
    assert steps == [9, 10, 11, 12]  # only the steps left, in epoch 2
    assert report.resumed_from == "epoch 2, step 8"
    assert report.steps == full_report.steps == 12
    for (name, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert [h.recall for h in report.history] == [h.recall for h in full_report.history]


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_the_rng_state_round_trips_through_a_checkpoint(device: str, tmp_path: Path) -> None:
    """Finding 3: ``torch.load(map_location=<cuda>)`` moved the saved CPU generator state to the
    GPU and ``torch.set_rng_state`` refused it; the CUDA generators (dropout on a GPU) were never
    saved. The state is read onto the CPU and both come back."""
    from vlagent.finetune.train import _save, load_checkpoint, restore_rng, rng_state

    torch.manual_seed(123)
    if device == "cuda":
        torch.cuda.manual_seed_all(123)
    _save(tmp_path / "last.pt", {"rng": rng_state(device)})
    expected_cpu = torch.rand(4)
    expected_dev = torch.rand(4, device=device)
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["rng"]["cpu"].device.type == "cpu" and saved["rng"]["cpu"].dtype == torch.uint8
    assert ("cuda" in saved["rng"]) == (device == "cuda")
    torch.rand(100, device=device)  # move every generator on
    restore_rng(saved["rng"])
    assert torch.equal(torch.rand(4), expected_cpu)
    assert torch.equal(torch.rand(4, device=device), expected_dev)


def test_a_checkpoint_of_before_the_cuda_state_still_resumes() -> None:
    from vlagent.finetune.train import restore_rng

    torch.manual_seed(7)
    old = torch.get_rng_state()  # what last.pt held: the CPU state alone
    expected = torch.rand(3)
    restore_rng(old)
    assert torch.equal(torch.rand(3), expected)


def test_resuming_with_other_settings_is_refused(tiny_clip, ft_catalogue, tmp_path: Path) -> None:
    split = _split(ft_catalogue)
    with open_source(ft_catalogue[0]) as source:
        _run(tiny_clip, split, source, tmp_path, FinetuneConfig(epochs=1, batch_size=12))
        with pytest.raises(ResumeMismatch, match="batch_size"):
            _run(tiny_clip, split, source, tmp_path, FinetuneConfig(epochs=2, batch_size=16))


@pytest.mark.parametrize(
    "spec, frozen_groups",
    [
        (FreezeSpec(freeze="image"), {"image"}),
        (FreezeSpec(freeze="text"), {"text"}),
        (FreezeSpec(freeze="projections"), {"image", "text"}),
        (FreezeSpec(freeze="none", last_blocks=1), set()),
    ],
    ids=["image", "text", "projections", "last-block"],
)
def test_frozen_parameters_stay_bit_identical(tiny_clip, ft_catalogue, tmp_path: Path, spec, frozen_groups) -> None:
    split = _split(ft_catalogue)
    towers = _towers(tiny_clip)
    before = {k: v.detach().clone() for k, v in towers.model.named_parameters()}
    config = FinetuneConfig(epochs=1, batch_size=12, lr=1e-2, freeze=spec)
    with open_source(ft_catalogue[0]) as source:
        finetune(towers, source, split, tmp_path, config, progress=False)
    after = dict(towers.model.named_parameters())
    changed = {k for k in before if not torch.equal(before[k], after[k].detach())}
    trainable = {k for k, p in after.items() if p.requires_grad}
    assert changed and changed <= trainable  # everything frozen is bit-identical
    groups = {k: towers.group_of(k) for k in before}
    assert not {k for k in changed if groups[k] in frozen_groups}
    if spec.freeze == "projections":
        assert {groups[k] for k in trainable} == {"projection", "scale"}
    if spec.last_blocks == 1:  # block 0 of each 2-block tower and the embeddings stay put
        assert not [k for k in changed if ".layers.0." in k or ".layer.0." in k or "embeddings" in k]
        assert [k for k in changed if ".layers.1." in k] and [k for k in changed if ".layer.1." in k]


def _scripted_recall(monkeypatch: pytest.MonkeyPatch, r1s: list[float]) -> None:
    """The held-out evaluation still runs (the real encoder over the validation pairs), but its
    R@1 is scripted per call (before training, then each epoch): which model is kept is then
    the test's choice, not a tiny random model's."""
    from vlagent.finetune import train as train_mod
    from vlagent.finetune.metrics import Recall

    real, calls = train_mod.heldout_recall, iter(r1s)

    def scripted(*args, **kwargs):  # type: ignore[no-untyped-def]
        got = real(*args, **kwargs)
        r1 = next(calls)
        return Recall(r1=r1, r5=r1, r10=r1, queries=got.queries, images=got.images)

    monkeypatch.setattr(train_mod, "heldout_recall", scripted)


@pytest.mark.parametrize("kept", ["finetuned", "original"])
def test_open_clip_checkpoint_is_written_for_vlagent_pretrained(
    tiny_clip, ft_catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: str
) -> None:
    split = _split(ft_catalogue)
    towers = _towers(tiny_clip, "open_clip")
    _scripted_recall(monkeypatch, [0.2, 0.5] if kept == "finetuned" else [0.5, 0.2])
    with open_source(ft_catalogue[0]) as source:
        report = finetune(towers, source, split, tmp_path, FinetuneConfig(epochs=1, batch_size=12, lr=1e-2), progress=False)
    ckpt = tmp_path / "best" / "open_clip_model.pt"
    name, pretrained = tiny_clip["open_clip"]
    assert report.kept == kept and report.best_epoch == (1 if kept == "finetuned" else 0)
    if kept == "original":  # nothing better than the start: the export names the model it started from
        assert not ckpt.exists() and report.export == {"VLAGENT_CLIP_MODEL": name, "VLAGENT_CLIP_PRETRAINED": pretrained}
        return
    assert report.export == {"VLAGENT_CLIP_MODEL": name, "VLAGENT_CLIP_PRETRAINED": str(ckpt)}
    loaded = load_clip_encoder(name, str(ckpt), device="cpu")
    texts = ["红色连衣裙", "蓝色长裤"]
    assert torch.allclose(torch.from_numpy(loaded.encode_texts(texts)), torch.from_numpy(towers.encoder.encode_texts(texts)), atol=1e-5)


def test_open_clip_folder_is_exported_as_a_folder(tiny_clip, tmp_path: Path) -> None:
    towers = _towers(tiny_clip, "open_clip_dir")
    env = towers.export(tmp_path / "tmp", tmp_path / "best")
    (tmp_path / "tmp").rename(tmp_path / "best")
    assert env == {"VLAGENT_CLIP_MODEL": f"local-dir:{tmp_path / 'best'}"}
    loaded = load_clip_encoder(env["VLAGENT_CLIP_MODEL"], device="cpu")
    assert loaded.encode_texts(["x"]).tolist() == towers.encoder.encode_texts(["x"]).tolist()


def test_titles_longer_than_the_context_are_counted_and_cut_as_at_search(tiny_clip) -> None:
    from vlagent.finetune.train import truncation_report

    towers = _towers(tiny_clip)
    long = "红色连衣裙" * 20  # 100 characters: > the 52-token context of (tiny) Chinese-CLIP
    report = truncation_report(towers, [long, "红色连衣裙", long])
    assert report.context_length == 52
    assert (report.truncated, report.titles) == (1, 2)
    assert towers.tokens([long])["input_ids"].shape[1] == 52
    # training features of the long title are the search features of it
    towers.model.eval()
    with torch.no_grad():
        train_vec = torch.nn.functional.normalize(towers.text_features(towers.tokens([long])), dim=-1)
    assert torch.allclose(train_vec, torch.from_numpy(towers.encoder.encode_texts([long])), atol=1e-6)


def test_too_few_images_is_one_clear_error() -> None:
    from vlagent.errors import DataError

    with pytest.raises(DataError, match="at least 4"):
        split_pairs([Pair(image="a.jpg", title="x"), Pair(image="b.jpg", title="y")])


def test_cli_prints_the_recall_table_and_the_export_line(tiny_clip, ft_catalogue, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vlagent.cli.app import app

    folder, csv_path = ft_catalogue
    env = {"VLAGENT_HOME": str(tmp_path / "home"), "VLAGENT_DEVICE": "cpu"}
    args = ["finetune", "--images", str(folder), "-a", str(csv_path), "-m", tiny_clip["chinese_clip"][0],
            "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "12", "--lr", "5e-3", "--val-fraction", "0.25"]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "before (start)" in flat and "titles longer than the text context (52 tokens): 0 of 24" in flat
    assert "export VLAGENT_CLIP_MODEL=" in flat and (tmp_path / "run" / "report.json").is_file()
    missing = CliRunner().invoke(app, ["finetune", "--images", str(folder)], env=env)
    assert missing.exit_code == 2 and "--annotations" in missing.output
    bad = CliRunner().invoke(app, [*args[:5], "--freeze", "everything"], env=env)
    assert bad.exit_code == 2 and "--freeze 'everything'" in bad.output


def test_unreadable_held_out_images_are_left_out_of_the_recall(tiny_clip_encoder, bad_images) -> None:
    pairs = [Pair(image="good.jpg", title="红色连衣裙"), Pair(image="good.png", title="蓝色长裤"),
             Pair(image="empty.jpg", title="黄色棒球帽")]  # fmt: skip
    with open_source(bad_images.folder) as source:
        recall = heldout_recall(tiny_clip_encoder, source, pairs, max_pixels=64_000_000)
    assert (recall.queries, recall.images) == (2, 2) and recall.r5 == 1.0
