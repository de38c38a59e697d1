"""The homework's checks: pycnn's own code passes, typical mistakes fail with a clear line, errors give lines."""

import textwrap

import pytest

import pycnn.ops
from pycnn.cli import main
from pycnn.homework import EXERCISES, check_source, file_text, format_report
from pycnn.homework.edit import function_lines, replace_function
from pycnn.homework.exercises import BY_NAME

NAMES = [e.name for e in EXERCISES]


@pytest.fixture(params=[False, True], ids=["native", "pyodide"])
def spelling(request, monkeypatch):
    monkeypatch.setattr(pycnn.ops, "PYODIDE", request.param)


def with_body(name: str, body: str, source: str | None = None) -> str:
    """The solution file with exercise ``name``'s body replaced by ``body``."""
    source = file_text(solved=True) if source is None else source
    exercise = BY_NAME[name]
    indent = "    " * (2 if exercise.owner else 1)
    start, end = function_lines(source, name)
    lines = source.splitlines(keepends=True)
    text = exercise.signature + textwrap.indent(textwrap.dedent(body), indent)
    return "".join(lines[:start - 1]) + text + "".join(lines[end:])


def result(report: dict, name: str) -> dict:
    return next(r for r in report["results"] if r["name"] == name)


def test_the_exercises_come_in_the_homeworks_order():
    assert NAMES == ["ReLU.backward", "Dense.forward", "Dense.backward", "softmax_cross_entropy", "im2col",
                     "Conv2D.forward", "Conv2D.backward", "SGD.step", "Momentum.step"]


def test_the_template_has_every_signature_and_docstring_and_no_body():
    template = file_text(solved=False)
    for exercise in EXERCISES:
        assert exercise.signature.strip() in template
        assert exercise.doc.splitlines()[0] in template
    report = check_source(template)
    assert [r["status"] for r in report["results"]] == ["not written"] * len(NAMES)
    assert not report["ok"]


def test_the_reference_bodies_are_pycnns_source():
    assert "ops.masked(dout, self.positive)" in BY_NAME["ReLU.backward"].body
    assert "col2im(dcols, self.x_shape" in BY_NAME["Conv2D.backward"].body


@pytest.mark.usefixtures("spelling")
def test_the_reference_solutions_pass():
    report = check_source(file_text(solved=True))
    assert report["ok"], format_report(report)
    assert report["passed"] == report["checked"] == len(NAMES)
    rows = [row for r in report["results"] for row in r["rows"]]
    assert any("numerical gradient" in row["check"] and row["tolerance"] == 1e-6 for row in rows)


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_body_never_passes(name):
    report = check_source(with_body(name, "pass\n"))
    assert result(report, name)["status"] in ("fail", "error")
    assert not report["ok"]


MISTAKES = {  # exercise: (body, words the failing line must hold)
    "missing mask": ("ReLU.backward", "return dout.copy()\n", "dx vs pycnn: first differing entry"),
    "writes into dout": ("ReLU.backward", "dout[~self.positive] = 0\nreturn dout\n", "backward wrote into dout"),
    "wrong transpose": ("Dense.backward", """\
        self.W.grad = dout.T @ self.x
        self.b.grad = dout.sum(axis=0)
        return dout @ self.W.value.T
        """, "dW vs pycnn: shape (4, 6), expected (6, 4)"),
    "forgets the bias": ("Dense.forward", """\
        out, self.w_t = ops.dense_product(x, self.W.value)
        self.x = x
        return out
        """, "out vs pycnn: first differing entry"),
    "forgotten 1/N": ("softmax_cross_entropy", """\
        n = len(labels)
        logp = log_softmax(logits)
        grad = np.exp(logp)
        grad[np.arange(n), labels] -= 1
        return -float(logp[np.arange(n), labels].mean()), grad
        """, "dlogits vs pycnn: first differing entry"),
    "no log-sum-exp": ("softmax_cross_entropy", """\
        n = len(labels)
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        loss = -float(np.log(p[np.arange(n), labels]).mean())
        p[np.arange(n), labels] -= 1
        return loss, p / n
        """, "(logits in the thousands)"),
    "off-by-one padding": ("im2col", """\
        n, h, w, c = x.shape
        p = padding + 1
        oh, ow = output_size(h, kh, stride, p), output_size(w, kw, stride, p)
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        cols = np.stack([padded[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
                         for i in range(kh) for j in range(kw)], axis=3)
        return cols.reshape(n * oh * ow, -1)
        """, "padding 0: shape (60, 9), expected (24, 9)"),
    "forgotten bias gradient": ("Conv2D.backward", """\
        dz = ops.gradient_rows(dout, self._order)
        dw = ops.patches_t_times(self.cols, dz)
        self.W.grad = dw[:-1].reshape(self.W.value.shape)
        self.b.grad = np.zeros(self.out_ch, dtype=np.float32)
        w = self.W.value.reshape(-1, self.out_ch)
        return col2im(ops.rows_times_weights_t(dz, w), self.x_shape, self.kh, self.kw, self.stride,
                      self.padding, batch_last=self.batch_last)
        """, "db vs pycnn, x (2, 6, 6, 1): first differing entry"),
    "ignores weight decay": ("SGD.step", """\
        for p in self.params:
            p.value -= self.lr * p.grad
        """, "weight_decay 0.01): first differing entry"),
    "velocity not kept": ("Momentum.step", """\
        for p, v in zip(self.params, self.velocity):
            v = self.momentum * v - self.lr * self.gradient(p)
            p.value += v
        """, "after 3 steps (lr 0.1, momentum 0.9): first differing entry"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_typical_mistake_fails_with_a_clear_line(mistake):
    name, body, words = MISTAKES[mistake]
    source = with_body(name, body)
    report = check_source(source)
    r = result(report, name)
    assert r["status"] == "fail", format_report(report)
    assert words in r["message"]
    assert r["line"] == function_lines(source, name)[0]
    # the others still pass, except those that call it: a backward check runs its class's forward,
    # and Conv2D calls the file's im2col
    owners = {BY_NAME[name].owner or name} | ({"Conv2D"} if name == "im2col" else set())
    others = [x["status"] for x in report["results"] if (BY_NAME[x["name"]].owner or x["name"]) not in owners]
    assert set(others) == {"pass"}
    failing = [row for row in r["rows"] if not row["passed"]]
    assert failing and (failing[0]["error"] is None or failing[0]["error"] > failing[0]["tolerance"])


def test_a_leaky_relu_passes_its_gradient_check_but_not_pycnns_values():
    source = with_body("ReLU.backward", "return np.where(self.positive, dout, 0.01 * dout)\n")
    source = source.replace("class ReLU(layers.ReLU):\n", "class ReLU(layers.ReLU):\n"
                            "    def forward(self, x, training=True):\n"
                            "        self.positive = x > 0\n"
                            "        return np.where(self.positive, x, 0.01 * x)\n\n")
    rows = {row["check"]: row["passed"] for row in result(check_source(source), "ReLU.backward")["rows"]}
    assert rows["dx vs numerical gradient"] and not rows["dx vs pycnn"]


def test_a_syntax_error_gives_its_line():
    source = file_text(solved=True).replace("return ops.masked(dout, self.positive)",
                                            "return ops.masked(dout,, self.positive)")
    report = check_source(source)
    line = source.splitlines().index("        return ops.masked(dout,, self.positive)") + 1
    assert report["error"]["line"] == line and report["error"]["message"].startswith("SyntaxError")
    assert not report["ok"] and report["results"] == []


def test_an_exception_in_the_students_code_gives_its_line():
    source = with_body("Dense.forward", "self.x = x\nreturn x @ self.weights\n")
    r = result(check_source(source), "Dense.forward")
    assert r["status"] == "error"
    assert r["message"].startswith("AttributeError:") and "weights" in r["message"]
    assert source.splitlines()[r["line"] - 1].strip() == "return x @ self.weights"


def test_exercises_the_file_does_not_define_are_not_checked():
    source = file_text(solved=True)
    only_relu = source[:source.index("class Dense")]
    report = check_source(only_relu)
    assert report["ok"] and report["checked"] == 1
    assert result(report, "Dense.forward")["status"] == "missing"
    assert not check_source("import numpy as np\n")["ok"]


def test_solution_and_reset_replace_one_exercise():
    template = file_text(solved=False)
    solved = replace_function(template, "im2col")
    assert result(check_source(solved), "im2col")["status"] == "pass"
    assert replace_function(solved, "im2col", solved=False) == template
    without = template.replace(BY_NAME["SGD.step"].text(False), "        pass\n")
    assert result(check_source(replace_function(without, "SGD.step")), "SGD.step")["status"] == "pass"


def test_cli_check_passes_the_solution_and_fails_a_mistake(tmp_path, capsys):
    assert main(["check", "--solution"]) == 0
    solution = capsys.readouterr().out
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(solution)
    bad.write_text(with_body("ReLU.backward", "return dout.copy()\n", solution))
    assert main(["check", str(good)]) == 0
    assert "9 of 9 exercises checked pass." in capsys.readouterr().out
    assert main(["check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "first differing entry" in out and "8 of 9" in out


def test_cli_check_template_fails_and_missing_file_is_one_line(tmp_path, capsys):
    assert main(["check", "--template"]) == 0
    template = tmp_path / "my_layers.py"
    template.write_text(capsys.readouterr().out)
    assert main(["check", str(template)]) == 1
    assert "NOT WRITTEN" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "absent.py")]) == 1
    assert capsys.readouterr().err.startswith("error: cannot read")
    assert main(["check", str(template), "--exercise", "ReLU.backward"]) == 1
    assert "0 of 1" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", MISTAKES)
def test_cli_check_fails_each_typical_mistake_with_its_line(mistake, tmp_path, capsys):
    name, body, words = MISTAKES[mistake]
    path = tmp_path / "my_layers.py"
    path.write_text(with_body(name, body))
    assert main(["check", str(path), "--exercise", name]) == 1
    out = capsys.readouterr().out
    detail = words.split(": ", 1)[-1]  # the table prints the check and its detail on two lines
    assert "FAIL" in out and detail in out and "0 of 1 exercises checked pass." in out
