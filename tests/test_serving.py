"""`vlagent serve`: command lines from settings, and a real llama.cpp server started and stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from vlagent.errors import BackendUnavailableError, VlagentError
from vlagent.serving import commands
from vlagent.serving.commands import build_specs, llama_cpp_command, require_engine, vllm_command
from vlagent.models.health import check_server, models_url
from vlagent.serving.process import free_port
from vlagent.settings import Settings


def _opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# --- command lines ------------------------------------------------------------------------
def test_vllm_llm_command_hub_profile(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, serve_host="0.0.0.0", serve_llm_port=8100, serve_max_model_len=8192,
                 serve_gpu_memory_utilization=0.8, serve_dtype="bfloat16")  # fmt: skip
    spec = vllm_command(s, "llm", use_module=False)
    assert spec.argv[:3] == ["vllm", "serve", "Qwen/Qwen2.5-1.5B-Instruct"]
    argv = spec.argv
    assert (_opt(argv, "--host"), _opt(argv, "--port")) == ("0.0.0.0", "8100")
    assert _opt(argv, "--tensor-parallel-size") == "1"
    assert _opt(argv, "--max-model-len") == "8192"
    assert _opt(argv, "--gpu-memory-utilization") == "0.8"
    assert _opt(argv, "--dtype") == "bfloat16"
    assert _opt(argv, "--served-model-name") == "Qwen/Qwen2.5-1.5B-Instruct"
    assert "--enable-auto-tool-choice" in argv and _opt(argv, "--tool-call-parser") == "hermes"
    assert json.loads(_opt(argv, "--structured-outputs-config")) == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert "--limit-mm-per-prompt" not in argv
    assert spec.base_url == "http://127.0.0.1:8100/v1"  # 0.0.0.0 is reached via loopback
    assert "VLAGENT_LLM_BASE_URL=http://127.0.0.1:8100/v1" in spec.agent_env()
    assert "VLAGENT_LLM_BACKEND=openai" in spec.agent_env()


def test_vllm_vlm_command_with_tensor_parallel(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, serve_tensor_parallel_size=4, serve_vlm_port=8201, serve_vlm_max_images=6)
    spec = vllm_command(s, "vlm", use_module=False)
    assert spec.argv[:3] == ["vllm", "serve", "Qwen/Qwen2-VL-2B-Instruct"]
    assert _opt(spec.argv, "--tensor-parallel-size") == "4"
    assert _opt(spec.argv, "--port") == "8201"
    assert json.loads(_opt(spec.argv, "--limit-mm-per-prompt")) == {"image": 6}
    assert "--enable-auto-tool-choice" not in spec.argv and "--structured-outputs-config" not in spec.argv
    assert "VLAGENT_VQA_BASE_URL=http://127.0.0.1:8201/v1" in spec.agent_env()


def test_vllm_offline_profile_serves_the_gguf(tmp_path: Path) -> None:
    s = Settings(profile="offline", home=tmp_path)
    spec = vllm_command(s, "llm", use_module=True, python="/py")
    assert spec.argv[:5] == ["/py", "-m", "vllm.entrypoints.openai.api_server", "--model", str(s.resolved_gguf)]
    assert _opt(spec.argv, "--served-model-name") == "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M"
    # the offline profile has no VLM, but the command for a configured one still builds
    assert vllm_command(s, "vlm", use_module=False).argv[2] == s.vqa_model


def test_llama_cpp_command(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, llm_gguf=tmp_path / "m.gguf", llm_n_threads=3, llm_n_ctx=2048,
                 serve_llm_port=8300, llm_chat_format="chatml-function-calling")  # fmt: skip
    spec = llama_cpp_command(s, python="/py")
    assert spec.argv[:3] == ["/py", "-m", "vlagent.serving.llama_server"]
    assert _opt(spec.argv, "--model") == str(tmp_path / "m.gguf")
    assert (_opt(spec.argv, "--threads"), _opt(spec.argv, "--n-ctx"), _opt(spec.argv, "--port")) == ("3", "2048", "8300")
    assert _opt(spec.argv, "--parallel") == str(s.llm_parallel)
    assert _opt(spec.argv, "--chat-template") == "chatml-function-calling"
    assert _opt(spec.argv, "--alias") == "m"  # the GGUF's stem, unless serve_llm_name
    assert spec.served_name in spec.agent_env()


def test_build_specs_all_and_engine_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLAGENT_VLLM_PYTHON", raising=False)
    s = Settings(home=tmp_path)
    monkeypatch.setattr(commands, "vllm_installed", lambda: False)
    assert [x.engine for x in build_specs(s, "llm")] == ["llama-cpp"]  # auto without vLLM
    both = build_specs(s, "all", "vllm")
    assert [(x.role, x.engine) for x in both] == [("llm", "vllm"), ("vlm", "vllm")]
    assert both[0].port != both[1].port
    mixed = build_specs(s, "all", "llama-cpp")
    assert [(x.role, x.engine) for x in mixed] == [("llm", "llama-cpp"), ("vlm", "vllm")]
    with pytest.raises(VlagentError, match="vLLM only"):
        commands.resolve_engine(s, "llama-cpp", "vlm")


def test_vlm_pixel_cap_is_what_the_vqa_tool_sends(tmp_path: Path) -> None:
    """Finding 6: without --mm-processor-kwargs vLLM sizes its start-up memory check for
    Qwen2-VL's own cap (12,845,056 pixels, 16,384 tokens an image); the client shrinks images
    to vqa_max_image_side (640) first, so the server's cap is that square on the 28-pixel grid."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    s = Settings(home=tmp_path)
    cap = json.loads(_opt(vllm_command(s, "vlm", use_module=False).argv, "--mm-processor-kwargs"))["max_pixels"]
    assert cap == 644 * 644 == commands.vlm_max_pixels(s)
    assert cap // (28 * 28) == 529 < 16_384  # image tokens at most, against the model's own 16,384
    for w, h in [(640, 640), (640, 480), (427, 640), (640, 90)]:  # what the vqa tool sends at most
        assert smart_resize(h, w, factor=28, min_pixels=56 * 56, max_pixels=cap) == smart_resize(
            h, w, factor=28, min_pixels=56 * 56, max_pixels=12_845_056
        ), (w, h)  # the cap never shrinks what the client sends
    bigger = Settings(home=tmp_path, vqa_max_image_side=1000)
    assert commands.vlm_max_pixels(bigger) == 1008 * 1008
    four = 4 * (cap // 784)  # a compare question's 4 images fit serve_max_model_len with room for text
    assert four < s.serve_max_model_len


def test_serve_all_shares_one_gpu_and_splits_several(tmp_path: Path) -> None:
    """Finding 7: each vLLM server takes its --gpu-memory-utilization of the whole GPU; two at
    0.9 on one GPU cannot both start."""
    s = Settings(home=tmp_path)
    one = commands.plan_gpus(s, ["llm", "vlm"], gpus=["0"])
    assert sum(p.utilization for p in one.values()) <= 0.9 and all(p.devices is None for p in one.values())
    two = commands.plan_gpus(s, ["llm", "vlm"], gpus=["0", "1"])
    assert {r: (p.utilization, p.devices) for r, p in two.items()} == {"llm": (0.9, ["0"]), "vlm": (0.9, ["1"])}
    tp2 = commands.plan_gpus(s.model_copy(update={"serve_tensor_parallel_size": 2}), ["llm", "vlm"], gpus=["0", "1", "2", "3"])
    assert [p.devices for p in tp2.values()] == [["0", "1"], ["2", "3"]]
    shared_tp = commands.plan_gpus(s.model_copy(update={"serve_tensor_parallel_size": 2}), ["llm", "vlm"], gpus=["0", "1"])
    assert [p.devices for p in shared_tp.values()] == [None, None]
    assert commands.plan_gpus(s, ["vlm"], gpus=["0"])["vlm"].utilization == 0.9  # alone: the whole GPU
    explicit = s.model_copy(update={"serve_gpu_memory_utilization": 0.9})
    with pytest.raises(VlagentError, match="VLAGENT_SERVE_GPU_MEMORY_UTILIZATION=0.9") as err:
        commands.plan_gpus(explicit, ["llm", "vlm"], gpus=["0"])
    assert "\n" not in str(err.value)
    assert commands.plan_gpus(s.model_copy(update={"serve_gpu_memory_utilization": 0.4}), ["llm", "vlm"], gpus=["0"])["llm"].utilization == 0.4


def test_serve_all_command_lines_on_one_and_two_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(home=tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    specs = build_specs(s, "all", "vllm")
    assert [float(_opt(x.argv, "--gpu-memory-utilization")) for x in specs] == [0.45, 0.45]
    assert all("CUDA_VISIBLE_DEVICES" not in x.env for x in specs)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    specs = build_specs(s, "all", "vllm")
    assert [float(_opt(x.argv, "--gpu-memory-utilization")) for x in specs] == [0.9, 0.9]
    assert [x.env["CUDA_VISIBLE_DEVICES"] for x in specs] == ["2", "3"]
    assert specs[1].command_line.startswith("CUDA_VISIBLE_DEVICES=3 ")  # --dry-run shows it
    alone = build_specs(s, "vlm", "vllm")
    assert float(_opt(alone[0].argv, "--gpu-memory-utilization")) == 0.9 and not alone[0].env


def test_vllm_from_its_own_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """VLAGENT_VLLM_PYTHON: vLLM's own interpreter, started with the module form; auto picks it."""
    python = tmp_path / "vllm-env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho '{\"vllm\": true, \"dist\": false}'\n")
    python.chmod(0o755)
    monkeypatch.setenv("VLAGENT_VLLM_PYTHON", str(python))
    monkeypatch.setattr(commands, "vllm_installed", lambda: False)
    s = Settings(home=tmp_path, serve_vllm_args="--enforce-eager --max-num-seqs 8", serve_vlm_max_pixels=200704)
    assert s.vllm_python == python
    spec = vllm_command(s, "llm")
    assert spec.argv[:5] == [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", s.llm_model]
    assert spec.argv[-3:] == ["--enforce-eager", "--max-num-seqs", "8"]
    vlm = vllm_command(s, "vlm")
    assert json.loads(_opt(vlm.argv, "--mm-processor-kwargs")) == {"max_pixels": 200704}
    assert vlm.argv.index("--limit-mm-per-prompt") < vlm.argv.index("--enforce-eager")
    commands.probe_python.cache_clear()
    assert commands.resolve_engine(s, None, "llm") == "vllm"  # auto: the configured environment has vLLM
    require_engine("vllm", s)  # no error
    commands.probe_python.cache_clear()
    python.write_text("#!/bin/sh\necho '{\"vllm\": false, \"dist\": false}'\n")
    with pytest.raises(VlagentError, match=f"vLLM is not installed in {python}"):
        require_engine("vllm", s)
    assert commands.resolve_engine(s, None, "llm") == "llama-cpp"
    commands.probe_python.cache_clear()
    missing = s.model_copy(update={"vllm_python": tmp_path / "nope" / "python"})
    with pytest.raises(VlagentError, match="VLAGENT_VLLM_PYTHON=.*does not exist"):
        require_engine("vllm", missing)


def test_probe_python_of_a_real_interpreter() -> None:
    commands.probe_python.cache_clear()
    found, _ = commands.probe_python(sys.executable)
    assert found == commands.vllm_installed()
    assert commands.probe_python("/nonexistent/python") == (False, False)


def test_vllm_offline_profile_serves_the_converted_folder(tmp_path: Path) -> None:
    s = Settings(profile="offline", home=tmp_path)
    assert s.resolved_llm_hf == tmp_path / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m-hf"
    s.resolved_llm_hf.mkdir(parents=True)
    (s.resolved_llm_hf / "config.json").write_text("{}")
    spec = vllm_command(s, "llm", use_module=True, python="/py")
    assert _opt(spec.argv, "--model") == str(s.resolved_llm_hf)
    assert _opt(spec.argv, "--served-model-name") == s.llm_model  # the name the offline agent asks for


def test_stop_ends_what_the_server_left_in_its_group(tmp_path: Path) -> None:
    """A server whose own child outlives it (vLLM's engine core) is still stopped with it."""
    from vlagent.serving.commands import ServeSpec
    from vlagent.serving.process import ServerProcess

    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, signal, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "time.sleep(600)\n"
    )
    spec = ServeSpec(role="llm", engine="vllm", argv=[sys.executable, "-c", script], host="127.0.0.1",
                     port=free_port(), served_name="x")  # fmt: skip
    server = ServerProcess(spec, tmp_path / "log.txt")
    server.start()
    deadline = time.monotonic() + 30
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert server.stop(grace=5) == 0
    deadline = time.monotonic() + 15
    while Path(f"/proc/{child}").exists() and not _is_zombie(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or _is_zombie(child)


def test_missing_vllm_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "vllm_installed", lambda: False)
    with pytest.raises(VlagentError, match=r"pip install 'vlagent\[vllm\]'"):
        require_engine("vllm")


def test_cli_missing_vllm_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "VLAGENT_HOME": str(tmp_path)}
    env.pop("VLAGENT_VLLM_PYTHON", None)  # set for tests/test_vllm_server.py
    done = subprocess.run(
        [sys.executable, "-m", "vlagent.cli.app", "serve", "vlm"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2
    assert "vLLM is not installed" in done.stderr and "vlagent[vllm]" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_dry_run_prints_commands(tmp_path: Path) -> None:
    env = {**os.environ, "VLAGENT_HOME": str(tmp_path), "COLUMNS": "400"}
    done = subprocess.run(
        [sys.executable, "-m", "vlagent.cli.app", "serve", "all", "--engine", "vllm", "--dry-run", "--tp", "2"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--tensor-parallel-size 2" in done.stdout
    assert "--limit-mm-per-prompt" in done.stdout and "--tool-call-parser hermes" in done.stdout


# --- health -------------------------------------------------------------------------------
def test_models_url_and_dead_server() -> None:
    assert models_url("http://h:1/v1/") == "http://h:1/v1/models"
    assert models_url("http://h:1") == "http://h:1/v1/models"
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendUnavailableError, match=url.replace(".", r"\.")):
        check_server(url, timeout=2)


def test_check_server_lists_served_models(llama_server: str) -> None:
    from fixtures_llm import LLAMA_SERVER_MODEL

    assert check_server(llama_server, timeout=10) == [LLAMA_SERVER_MODEL]


# --- a real `vlagent serve llm --engine llama-cpp` ----------------------------------------
def test_serve_llm_llama_cpp_real_process(smollm_gguf: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "VLAGENT_HOME": str(tmp_path), "VLAGENT_LLM_GGUF": str(smollm_gguf),
           "VLAGENT_LLM_N_THREADS": "1", "VLAGENT_LLM_N_CTX": "1024", "COLUMNS": "400"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlagent.cli.app", "serve", "llm", "--engine", "llama-cpp", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        served: list[str] = []
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                served = check_server(base, timeout=2)
                break
            except BackendUnavailableError:
                time.sleep(0.5)
        assert served == ["SmolLM2-135M-Instruct.Q4_1"], proc.poll()
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once `serve` itself has seen the server answer
        assert line.startswith(f"export VLAGENT_LLM_BACKEND=openai VLAGENT_LLM_BASE_URL={base}"), line
        answer = httpx.post(
            base + "/chat/completions", timeout=120,
            json={"model": served[0], "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8},
        ).json()  # fmt: skip
        assert answer["choices"][0]["message"]["content"].strip()
        child_pids = _children(proc.pid)
        assert child_pids, "the llama.cpp server runs as a child process"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in err
    for pid in child_pids:  # the server child is gone too
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    with pytest.raises(BackendUnavailableError):
        check_server(base, timeout=2)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
