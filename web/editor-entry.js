// The Code card's editor: CodeMirror 6 with Python, bundled by build_site.py
// (esbuild) into site/vendor/editor.js, which web/code.js loads when the card
// is first opened. It shows text and reports edits; the marks on error lines
// are set from Python's replies (pycnn.homework), never computed here.

import { basicSetup, EditorView } from "codemirror";
import { python } from "@codemirror/lang-python";
import { Compartment, EditorState, StateEffect, StateField } from "@codemirror/state";
import { Decoration, keymap } from "@codemirror/view";
import { indentWithTab } from "@codemirror/commands";

const setMarks = StateEffect.define();

// Lines marked as wrong: {line, kind: "error" | "fail", message}; cleared by any edit.
const marks = StateField.define({
  create: () => Decoration.none,
  update(value, tr) {
    for (const effect of tr.effects) if (effect.is(setMarks)) return effect.value;
    return tr.docChanged ? Decoration.none : value;
  },
  provide: (field) => EditorView.decorations.from(field),
});

function decorations(doc, list) {
  const ranges = list
    .filter((m) => m.line >= 1 && m.line <= doc.lines)
    .sort((a, b) => a.line - b.line)
    .map((m) => Decoration.line({ class: `cm-mark-${m.kind}`, attributes: { title: m.message || "" } }).range(doc.line(m.line).from));
  return Decoration.set(ranges, true);
}

/** An editor in `parent`: {text, setText, setReadOnly, mark, goto, focus, view}; onChange(text) after edits. */
export function createEditor(parent, { doc = "", readOnly = false, onChange = () => {} } = {}) {
  const editable = new Compartment();
  const lock = (ro) => [EditorState.readOnly.of(ro), EditorView.editable.of(!ro)];
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        basicSetup,
        keymap.of([indentWithTab]), // Tab indents; Esc then Tab leaves the editor (CodeMirror's escape hatch)
        python(),
        marks,
        editable.of(lock(readOnly)),
        EditorView.contentAttributes.of({ "aria-label": "Python code", spellcheck: "false" }),
        EditorView.updateListener.of((u) => u.docChanged && onChange(u.state.doc.toString())),
      ],
    }),
  });
  return {
    view,
    text: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    setReadOnly: (ro) => view.dispatch({ effects: editable.reconfigure(lock(ro)) }),
    mark(list) {
      view.dispatch({ effects: setMarks.of(decorations(view.state.doc, list)) });
    },
    goto(line) {
      if (!line || line > view.state.doc.lines) return;
      const pos = view.state.doc.line(line).from;
      view.dispatch({ selection: { anchor: pos }, effects: EditorView.scrollIntoView(pos, { y: "center" }) });
    },
    focus: () => view.focus(),
  };
}
