// Persistent TypeScript type-checker for the executor: `tsc --target esnext main.ts` semantics,
// with the parsed lib .d.ts files kept between programs (~25 ms per program instead of ~2.5 s).
// Protocol: one JSON object per line on stdin {"source": "..."};
// one JSON line back {"ok": bool, "diagnostics": "...", "js": "..."} (ok = no error diagnostics).
const ts = require('typescript');
const readline = require('readline');

const FILE = '/work/main.ts';
const options = { target: ts.ScriptTarget.ESNext };
const baseHost = ts.createCompilerHost(options);
const libFiles = new Map();
let source = '';
let emitted = '';
let previous;

const host = Object.assign({}, baseHost, {
  getSourceFile(fileName, languageVersion, onError) {
    if (fileName === FILE) return ts.createSourceFile(FILE, source, languageVersion);
    if (!libFiles.has(fileName)) libFiles.set(fileName, baseHost.getSourceFile(fileName, languageVersion, onError));
    return libFiles.get(fileName);
  },
  fileExists: (fileName) => fileName === FILE || baseHost.fileExists(fileName),
  readFile: (fileName) => (fileName === FILE ? source : baseHost.readFile(fileName)),
  writeFile: (fileName, text) => { if (fileName.endsWith('.js')) emitted = text; },
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  source = JSON.parse(line).source;
  emitted = '';
  const program = ts.createProgram([FILE], options, host, previous);
  previous = program;
  const file = program.getSourceFile(FILE);
  // tsc reports every file's diagnostics; the lib .d.ts files have none, so checking only the
  // program file gives the same verdict without re-checking the libs on every request.
  const diagnostics = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics(),
    ...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)];
  program.emit(file);  // emit() without a file would type-check every lib file first
  const errors = diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error);
  const text = ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (f) => f, getCurrentDirectory: () => '/work', getNewLine: () => '\n',
  });
  process.stdout.write(JSON.stringify({ ok: errors.length === 0, diagnostics: text, js: emitted }) + '\n');
});
