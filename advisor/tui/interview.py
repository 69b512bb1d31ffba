"""The interview: goal, data, base model, hardware, deploy target and priority, one step at a time."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.suggester import Suggester
from textual.widget import Widget
from textual.widgets import (
    Button,
    Checkbox,
    ContentSwitcher,
    Header,
    Input,
    Label,
    OptionList,
    RadioButton,
    RadioSet,
    Static,
)
from textual.widgets.option_list import Option

from advisor.tui.footer import KeysFooter
from knowledge.errors import InputError

if TYPE_CHECKING:
    from knowledge import BuiltinModel

__all__ = ["InterviewScreen", "PathSuggester", "STEPS"]

STEPS = ("goal", "data", "model", "hardware", "target")
STEP_TITLES = {"goal": "what the model should learn", "data": "your data", "model": "the base model",
               "hardware": "where it trains", "target": "where it runs, and what matters most"}


def _builtin() -> BuiltinModel:
    """The model that comes with the install (knowledge/models.yaml, builtin), offered for trying things on a CPU."""
    from knowledge import load_builtin_models

    return next(iter(load_builtin_models().values()))
GOALS = {
    "style": ("Style", "tone, voice and format", "answer like our support team: short, warm, signed Ada"),
    "knowledge": ("Knowledge", "facts the model does not know", "our product catalogue, policies, internal docs"),
    "reasoning": ("Reasoning", "multi-step problem solving", "maths word problems with worked solutions"),
    "agent": ("Tool calling", "when and how to call tools (JSON)", "call get_weather(city) when asked about it"),
}
DEPLOY = {"server": "a server, workstation or desktop (with or without a GPU)",
          "edge": "a laptop, phone or small board (it must run small: 4-bit)"}
PRIORITY = {"balanced": "a sensible balance", "quality": "the best result", "speed": "a quick experiment",
            "memory": "the least memory"}


class PathSuggester(Suggester):
    """Completes file paths as they are typed."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        path = Path(os.path.expanduser(value))
        folder, stem = (path, "") if value.endswith("/") else (path.parent, path.name)
        try:
            names = sorted(n for n in os.listdir(folder) if n.startswith(stem) and not n.startswith("."))
        except OSError:
            return None
        if not names:
            return None
        completion = names[0] + ("/" if (folder / names[0]).is_dir() else "")
        return value + completion[len(stem):]


class InterviewScreen(Screen[None]):
    """Five steps; Next checks the step's answer before moving on."""

    BINDINGS = [Binding("ctrl+n", "next", "Next"), Binding("ctrl+b", "back", "Back"),
                Binding("ctrl+g", "check", "Check"), Binding("ctrl+l", "use_builtin", "Built-in model"),
                Binding("ctrl+f", "suggest", "Suggest models"),
                Binding("ctrl+s", "app.save_answers", "Save")]
    #: Where typing goes when each step opens.
    FIRST_FIELD = {"goal": "#goal", "data": "#data-path", "model": "#model-name", "hardware": "#gpu-name",
                   "target": "#deploy"}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("", id="step-title", classes="title")
        with ContentSwitcher(initial="step-goal", id="steps"):  # the other steps are made when first shown
            yield VerticalScroll(*self.step_widgets("goal"), id="step-goal", classes="step")
        yield Static("", id="problem", classes="error")
        with Horizontal(classes="buttons"):
            yield Button("Back", id="back")
            yield Button("Save answers", id="save")
            yield Button("Next", id="next", variant="primary")
        yield KeysFooter()

    def step_widgets(self, name: str) -> list[Widget]:
        """The widgets of one step."""
        if name == "goal":
            # one OptionList, not a RadioSet of four buttons: the first screen draws quicker (issue 19)
            return [Static("What should the model learn? Arrows to move; Enter takes the highlighted one and goes on.",
                           classes="hint"),
                    OptionList(*(Option(Text.assemble((f"{title}: {what}", "bold"), "\n",
                                                      (f"  for example: {example}", "dim")), id=key)
                                 for key, (title, what, example) in GOALS.items()), id="goal")]
        if name == "data":
            return [Static("Your training data (JSONL, JSON, CSV or Parquet), or how many examples you have. "
                           "Enter checks the file.", classes="hint"),
                    Horizontal(Input(placeholder="path to your data file", id="data-path", suggester=PathSuggester()),
                               Button("Check", id="check-data"), classes="field"),
                    Input(placeholder="or: number of examples (when there is no file yet)", id="data-examples",
                          type="integer"),
                    Static("", id="findings"),
                    Static("A random 10% of the examples, to read before training:", classes="hint"),
                    VerticalScroll(Static("", id="sample-text"), id="sample")]
        if name == "model":
            builtin = _builtin()
            return [Static("The base model: a hub id (Qwen/Qwen2.5-7B-Instruct) or a local folder. Enter checks "
                           "it.", classes="hint"),
                    Horizontal(Input(placeholder="hub id or folder", id="model-name", suggester=PathSuggester()),
                               Button("Check", id="check-model"), classes="field"),
                    Static("", id="model-info"),
                    Static(f"To try things on a CPU: {builtin.name}, which comes with the install "
                           f"({builtin.licence}; {builtin.note}).", classes="hint"),
                    Button("Use the built-in model", id="use-builtin"),
                    Checkbox("for commercial use (only licences that allow it are suggested)", id="commercial"),
                    Static("Not sure which model? Ctrl+F suggests the largest that fit the hardware for your goal; "
                           "pick one with Enter.", classes="hint"),
                    OptionList(id="suggestions")]
        if name == "hardware":
            rows: list[Widget] = [Static(_escape(self.model_summary), id="model-summary", classes="hint"),
                                  Static("Where will it train? Detected values are filled in; change them if "
                                         "needed.", classes="hint"),
                                  Static("detecting the hardware...", id="hardware-info", classes="hint")]
            for label, field in (("GPU name (empty: no GPU)", Input(id="gpu-name")),
                                 ("GPU memory, GB (0: no GPU)", Input(id="gpu-memory", type="number")),
                                 ("GPUs like it on this machine", Input(id="gpu-count", type="integer", value="1")),
                                 ("Machines training together", Input(id="nodes", type="integer", value="1")),
                                 ("Machine 0's host:port (clusters)", Input(id="main-address",
                                                                            placeholder="10.0.0.5:29500")),
                                 ("RAM, GB", Input(id="ram", type="number"))):
                rows.append(Horizontal(Label(label), field, classes="row"))
            return rows
        return [Static("Where must the result run?", classes="hint"),
                RadioSet(*(RadioButton(f"{key}: {text}", id=f"deploy-{key}", value=key == "server")
                           for key, text in DEPLOY.items()), id="deploy"),
                Static("What matters most?", classes="hint"),
                RadioSet(*(RadioButton(f"{key}: {text}", id=f"priority-{key}", value=key == "balanced")
                           for key, text in PRIORITY.items()), id="priority")]

    async def ensure_step(self, name: str) -> None:
        """Make the step's widgets the first time it is shown, filled from the answers so far."""
        if name in self.filled:
            return
        self.filled.add(name)
        if not self.query(f"#step-{name}"):
            step = VerticalScroll(*self.step_widgets(name), id=f"step-{name}", classes="step")
            step.display = False  # until the switcher shows it
            await self.query_one("#steps", ContentSwitcher).mount(step)
        self.fill(name)

    # ------------------------------------------------------------------ state

    @property
    def answers(self) -> dict[str, Any]:
        data: dict[str, Any] = self.app.answers  # type: ignore[attr-defined]
        return data

    async def on_mount(self) -> None:
        self.step = 0
        self.model_summary = ""
        """The checked model's size and shape, shown again on the hardware step."""
        self.detected: Any = None
        self.filled: set[str] = set()
        self.checked: dict[str, str] = {}
        """The data path and model name as last checked: their findings stay until the field changes."""
        self.detecting = False
        await self.show_step()

    def fill(self, name: str) -> None:
        """Put the answers so far (an answers file's, or this interview's) into a step's widgets."""
        a = self.answers
        if name == "goal" and a.get("goal") in GOALS:
            self.query_one("#goal", OptionList).highlighted = list(GOALS).index(a["goal"])
        elif name == "data":
            data = a.get("data") or {}
            self.query_one("#data-path", Input).value = str(data.get("path") or "")
            if data.get("examples"):
                self.query_one("#data-examples", Input).value = str(data["examples"])
        elif name == "model":
            self.query_one("#model-name", Input).value = str((a.get("model") or {}).get("name_or_path") or "")
            self.query_one("#commercial", Checkbox).value = a.get("use") == "commercial"
            self.query_one("#suggestions", OptionList).display = False
        elif name == "hardware":
            hardware = a.get("hardware")
            if hardware is not None:
                gpus = hardware.get("gpus") or []
                self.query_one("#gpu-name", Input).value = gpus[0]["name"] if gpus else ""
                self.query_one("#gpu-memory", Input).value = str(gpus[0]["memory_gb"]) if gpus else "0"
                self.query_one("#gpu-count", Input).value = str(max(1, len(gpus)))
                self.query_one("#nodes", Input).value = str(hardware.get("nodes") or 1)
                self.query_one("#main-address", Input).value = hardware.get("main_address") or ""
                self.query_one("#ram", Input).value = str(hardware.get("ram_gb") or "")
                self.query_one("#hardware-info", Static).update("From the answers file (not detected here).")
            elif self.detected is not None:
                self._fill_hardware(self.detected)
        elif name == "target":
            for key in ("deploy", "priority"):
                if a.get(key):
                    self.query_one(f"#{key}-{a[key]}", RadioButton).value = True

    @work(thread=True, exclusive=True, group="hardware")
    def detect(self) -> None:
        from advisor.hardware import detect_hardware

        hw = detect_hardware()
        self.app.call_from_thread(self._fill_hardware, hw)

    def _fill_hardware(self, hw: Any) -> None:
        self.detected = hw
        if not self.query("#ram"):  # the hardware step is not shown yet: filled in when it is
            return
        if not self.query_one("#ram", Input).value:
            gpu = hw.gpus[0] if hw.gpus else None
            self.query_one("#gpu-name", Input).value = gpu.name if gpu else ""
            self.query_one("#gpu-memory", Input).value = f"{gpu.memory_gb:g}" if gpu else "0"
            self.query_one("#gpu-count", Input).value = str(max(1, len(hw.gpus)))
            self.query_one("#ram", Input).value = f"{hw.ram_gb:g}" if hw.ram_gb else ""
        notes = "; ".join(hw.notes)
        gpus = f"{len(hw.gpus)} GPU(s)" if hw.gpus else "no GPU"
        self.query_one("#hardware-info", Static).update(_escape(
            f"Detected: {gpus}, {hw.ram_gb:g} GB RAM, {hw.cpu_cores} CPU core(s)" + (f" ({notes})" if notes else "")))

    async def show_step(self) -> None:
        name = STEPS[self.step]
        if name != "goal" and not self.detecting and self.answers.get("hardware") is None:
            self.detecting = True  # once the first screen is up: detecting there slowed it by a sixth
            self.detect()
        await self.ensure_step(name)
        self.query_one("#steps", ContentSwitcher).current = f"step-{name}"
        self.query_one("#step-title", Label).update(f"Step {self.step + 1} of {len(STEPS)}: {STEP_TITLES[name]}")
        self.query_one("#back", Button).disabled = self.step == 0
        self.query_one("#next", Button).label = "Recommend" if self.step == len(STEPS) - 1 else "Next"
        self.problem("")
        self.query_one(self.FIRST_FIELD[name]).focus()
        self.refresh_bindings()
        # a path or model already given (from an answers file, or on coming back) is shown checked
        if name == "data" and self.query_one("#data-path", Input).value and not self._shown("#findings"):
            self.check_data_pressed()
        elif name == "model" and self.query_one("#model-name", Input).value and not self._shown("#model-info"):
            self.check_model_pressed()

    def _shown(self, selector: str) -> bool:
        return bool(str(self.query_one(selector, Static).render()).strip())

    def problem(self, text: str) -> None:
        """The step's problem under the step (wrapped; hidden when there is none)."""
        widget = self.query_one("#problem", Static)
        widget.update(_escape(text))
        widget.display = bool(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Check and the built-in model are offered on the steps they belong to."""
        if action == "check":
            return STEPS[self.step] in ("data", "model")
        if action in ("use_builtin", "suggest"):
            return STEPS[self.step] == "model"
        if action == "back":
            return self.step > 0
        return True

    # ------------------------------------------------------------------ navigation

    @on(Button.Pressed, "#next")
    async def action_next(self) -> None:
        try:
            self.collect(STEPS[self.step])
        except InputError as exc:
            self.problem(str(exc))
            return
        if self.step < len(STEPS) - 1:
            self.step += 1
            await self.show_step()
            return
        from advisor.answers import answers_from_dict
        from advisor.tui.recommendation import RecommendationScreen

        try:
            answers = answers_from_dict(self.answers, file="your answers", source=self.app.source)  # type: ignore[attr-defined]
        except InputError as exc:
            self.problem(str(exc))
            return
        self.app.push_screen(RecommendationScreen(answers))

    @on(OptionList.OptionSelected, "#goal")
    async def goal_chosen(self) -> None:
        await self.action_next()

    @on(Button.Pressed, "#back")
    async def action_back(self) -> None:
        if self.step > 0:
            self.step -= 1
            await self.show_step()

    @on(Button.Pressed, "#save")
    def save(self) -> None:
        self.app.action_save_answers()  # type: ignore[attr-defined]

    def action_check(self) -> None:
        if STEPS[self.step] == "data":
            self.check_data_pressed()
        elif STEPS[self.step] == "model":
            self.check_model_pressed()

    @on(Input.Submitted, "#data-path")
    @on(Input.Submitted, "#model-name")
    def submitted(self) -> None:
        self.action_check()

    @on(Input.Changed, "#data-path")
    @on(Input.Changed, "#data-examples")
    @on(Input.Changed, "#model-name")
    def edited(self, event: Input.Changed) -> None:
        """A finding or problem about the old value does not stay beside the new one."""
        if self.checked.get(event.input.id or "") == event.value:
            return  # the value that was checked (filled in from the answers, then checked)
        self.problem("")
        if event.input.id == "data-path":
            self.query_one("#findings", Static).update("")
        elif event.input.id == "model-name":
            self.query_one("#model-info", Static).update("")

    # ------------------------------------------------------------------ each step's answer

    def keep_shown_goal(self) -> None:
        """On the goal step the highlighted goal is the answer (there is nothing to check): saving keeps it."""
        if STEPS[self.step] == "goal":
            self.collect("goal")

    def collect(self, step: str) -> None:
        """Store the step's answer in the answers, or raise InputError saying what is wrong."""
        a = self.answers
        if step == "goal":
            goals = self.query_one("#goal", OptionList)
            if goals.highlighted is None:
                raise InputError("choose what the model should learn (arrows, then Enter)", key="goal")
            a["goal"] = list(GOALS)[goals.highlighted]
        elif step == "data":
            path = self.query_one("#data-path", Input).value.strip()
            count = self.query_one("#data-examples", Input).value.strip()
            data: dict[str, Any] = dict(a.get("data") or {})
            data.pop("path", None)
            data.pop("examples", None)
            if path:
                self.check_data(path)
                data["path"] = path
            elif count:
                if not count.isdigit() or int(count) < 1:
                    raise InputError("the number of examples must be a whole number above 0", key="data.examples")
                data["examples"] = int(count)
            else:
                raise InputError("give your data file, or how many examples you have", key="data")
            a["data"] = data
        elif step == "model":
            name = self.query_one("#model-name", Input).value.strip()
            if not name:
                raise InputError("give a hub id or a model folder", key="model.name_or_path")
            summary = self.check_model(name)
            a["model"] = {**(a.get("model") or {}), "name_or_path": name}
            if self.query_one("#commercial", Checkbox).value:
                a["use"] = "commercial"
            elif a.get("use") == "commercial":  # unticked
                a.pop("use")
            self.model_summary = f"Model: {name}, {summary}"
            if self.query("#model-summary"):
                self.query_one("#model-summary", Static).update(_escape(self.model_summary))
        elif step == "hardware":
            gpu_name = self.query_one("#gpu-name", Input).value.strip()
            memory = _number(self.query_one("#gpu-memory", Input).value, "hardware.gpus[0].memory_gb")
            ram = _number(self.query_one("#ram", Input).value, "hardware.ram_gb")
            gpu_count = _whole(self.query_one("#gpu-count", Input).value or "1", "hardware.gpus", "GPUs")
            nodes = _whole(self.query_one("#nodes", Input).value or "1", "hardware.nodes", "machines")
            if gpu_count < 1 or nodes < 1:
                raise InputError("must be at least 1", key="hardware.gpus" if gpu_count < 1 else "hardware.nodes")
            gpus = [{"name": gpu_name or "GPU", "memory_gb": memory} for _ in range(gpu_count)] if memory > 0 else []
            hardware: dict[str, Any] = {"gpus": gpus}
            if ram > 0:
                hardware["ram_gb"] = ram
            if nodes > 1:
                hardware["nodes"] = nodes
                address = self.query_one("#main-address", Input).value.strip()
                if address:
                    hardware["main_address"] = address
            a["hardware"] = hardware
        elif step == "target":
            for key in ("deploy", "priority"):
                pressed = self.query_one(f"#{key}", RadioSet).pressed_button
                if pressed is not None and pressed.id:
                    a[key] = pressed.id.removeprefix(f"{key}-")

    def _resolve(self, path: str) -> Path:
        p = Path(os.path.expanduser(path))
        source = self.app.source  # type: ignore[attr-defined]
        return p if p.is_absolute() or source is None else source.parent / p

    @on(Button.Pressed, "#check-data")
    def check_data_pressed(self) -> None:
        path = self.query_one("#data-path", Input).value.strip()
        self.checked["data-path"] = self.query_one("#data-path", Input).value
        try:
            self.check_data(path)
        except InputError as exc:
            self.query_one("#findings", Static).update(f"[red]{_escape(str(exc))}[/]")
            return
        self.problem("")

    def check_data(self, path: str) -> None:
        """Profile the file, show the findings and a random 10% sample; InputError when unusable."""
        from advisor.data_probe import probe_file
        from runner.records import read_records

        profile = probe_file(self._resolve(path))
        layout = f"read as {profile.layout} records" if profile.layout else "in no layout this tool reads"
        lines = [f"{profile.examples:,} usable example(s) of {profile.records:,}, {layout}"]
        if profile.total_chars:
            s = profile.total_chars
            lines.append(f"length in characters: median {s.p50:g}, 95% under {s.p95:g}, longest {s.max:,}")
        for problem in profile.problems[:6]:
            lines.append(f"line {problem.line}: {problem.message}")
        if len(profile.problems) > 6:
            lines.append(f"... and {sum(profile.problem_counts.values()) - 6} more (inspect-data lists all)")
        self.query_one("#findings", Static).update(_escape("\n".join(lines)))
        records = [(n, r) for n, r in read_records(self._resolve(path)) if isinstance(r, dict)]
        picked = random.Random(0).sample(records, max(1, min(20, len(records) // 10))) if records else []
        sample = "\n\n".join(f"line {n}: {str(r)[:300]}" for n, r in sorted(picked, key=lambda x: x[0]))
        self.query_one("#sample-text", Static).update(_escape(sample))
        if profile.examples == 0:
            raise InputError("no usable examples in the file; see the problems above", file=path)
        if profile.errors:
            raise InputError(f"{profile.errors} example(s) cannot be used; fix the lines above first", file=path)

    def action_suggest(self) -> None:
        """The largest catalog models that fit, for the goal and data so far and this hardware (or the answers')."""
        options = self.query_one("#suggestions", OptionList)
        options.display = True
        options.clear_options()
        options.add_option("working out which models fit...")
        raw: dict[str, Any] = {k: v for k, v in self.answers.items() if k in ("version", "goal", "data", "hardware",
                                                                              "deploy", "priority", "seed")}
        raw["use"] = "commercial" if self.query_one("#commercial", Checkbox).value else "research"
        self.suggest(raw)

    @work(thread=True, exclusive=True, group="suggest")
    def suggest(self, raw: dict[str, Any]) -> None:
        from advisor.model_choice import suggest_models, suggestion_answers

        try:
            fitting, left_out = suggest_models(suggestion_answers(raw, source=self.app.source))  # type: ignore[attr-defined]
        except InputError as exc:
            self.app.call_from_thread(self._suggested, [], [str(exc)])
            return
        self.app.call_from_thread(self._suggested, fitting, left_out)

    def _suggested(self, fitting: list[Any], left_out: list[str]) -> None:
        options = self.query_one("#suggestions", OptionList)
        options.clear_options()
        for s in fitting:
            m = s.model
            options.add_option(Option(_escape(f"{m.id} ({m.params_b:g}B): {s.why}\n  {m.licence.line()}"), id=m.id))
        for line in left_out[:4]:
            options.add_option(Option(_escape(f"left out: {line}"), disabled=True))
        if not fitting:
            options.add_option(Option("no catalog model fits here; give a smaller model or a larger machine",
                                      disabled=True))
        else:
            options.highlighted = 0  # Enter picks the largest that fits
        options.focus()

    @on(OptionList.OptionSelected, "#suggestions")
    def suggestion_picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.query_one("#model-name", Input).value = event.option.id
            self.check_model_pressed()
            self.query_one("#model-name", Input).focus()

    @on(Button.Pressed, "#use-builtin")
    def action_use_builtin(self) -> None:
        self.query_one("#model-name", Input).value = _builtin().name
        self.check_model_pressed()

    @on(Button.Pressed, "#check-model")
    def check_model_pressed(self) -> None:
        self.checked["model-name"] = self.query_one("#model-name", Input).value
        try:
            self.check_model(self.query_one("#model-name", Input).value.strip())
        except InputError as exc:
            self.query_one("#model-info", Static).update(f"[red]{_escape(str(exc))}[/]")
            return
        self.problem("")

    def check_model(self, name: str) -> str:
        """Profile the model and show its size and shape; the summary shown. InputError when it cannot be read."""
        from advisor.model_profile import profile_model

        local = self._resolve(name)
        target = str(local) if name.startswith((".", "/", "~")) or local.exists() else name
        params = (self.answers.get("model") or {}).get("params_b")
        p = profile_model(target, params)
        summary = (f"{p.params_b:.2f}B parameters, {p.num_layers} layers, hidden size {p.hidden_size}, "
                   f"{p.num_heads} attention heads ({p.num_kv_heads} for keys and values), a vocabulary of "
                   f"{p.vocab_size:,} (read from {p.source})")
        self.query_one("#model-info", Static).update(_escape(summary + "".join(f"\n{n}" for n in p.notes)))
        return summary


def _number(text: str, key: str) -> float:
    try:
        value = float(text.strip() or 0)
    except ValueError:
        raise InputError(f"{text!r} is not a number", key=key) from None
    if value < 0:
        raise InputError("must not be negative", key=key)
    return value


def _whole(text: str, key: str, what: str) -> int:
    if not text.strip().isdigit():
        raise InputError(f"the number of {what} must be a whole number, got {text.strip()!r}", key=key)
    return int(text)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
