// Typechecks every Grafana dashboard in dashboards/grafana/*.json against @grafana/schema
// with tsc: the dashboard as a whole against `Dashboard`, and each panel's `options` and
// `fieldConfig.defaults.custom` against the generated types of its panel plugin (every
// field name and value type checked, fields left out allowed: Grafana fills defaults).
// String enums of the schema are compared by value, as they appear in JSON.
//
// Usage: node tests/grafana/check.mjs [DASHBOARD.json...]   (run by tests/dashboards.rs)
// Exit 0 when every dashboard typechecks; tsc's errors otherwise.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const files = process.argv.length > 2
  ? process.argv.slice(2).map((f) => resolve(f))
  : readdirSync(join(root, 'dashboards/grafana'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => join(root, 'dashboards/grafana', f));
if (files.length === 0) {
  console.error('no dashboard to check');
  process.exit(1);
}

// Panel plugin -> module of its generated option types (and whether it has custom field config).
const cfg = (dir, name) => `@grafana/schema/dist/esm/raw/composable/${dir}/panelcfg/x/${name}PanelCfg_types.gen`;
const PLUGINS = {
  timeseries: { mod: cfg('timeseries', 'TimeSeries'), custom: true },
  stat: { mod: cfg('stat', 'Stat'), custom: false },
  bargauge: { mod: cfg('bargauge', 'BarGauge'), custom: false },
  table: { mod: cfg('table', 'Table'), custom: true },
  text: { mod: cfg('text', 'Text'), custom: false },
  piechart: { mod: cfg('piechart', 'PieChart'), custom: true },
};

const out = join(here, '.generated');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const header = `import type { Dashboard } from '@grafana/schema';
${Object.entries(PLUGINS).map(([k, p]) => `import type * as ${k} from '${p.mod}';`).join('\n')}

// A string enum compared by its values (JSON has no enums); everything else as declared.
type Lit<T> = T extends string ? \`\${T}\` : T extends readonly (infer U)[] ? Lit<U>[] : T extends object ? { [K in keyof T]: Lit<T[K]> } : T;
// The same, every field optional at every depth (Grafana fills defaults).
type Part<T> = T extends string ? \`\${T}\` : T extends readonly (infer U)[] ? Part<U>[] : T extends object ? { [K in keyof T]?: Part<T[K]> } : T;
`;

const problems = [];
for (const file of files) {
  const name = basename(file, '.json').replace(/[^A-Za-z0-9]/g, '_');
  let dash;
  try {
    dash = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    problems.push(`${file}: not JSON: ${e.message}`);
    continue;
  }
  // The import envelope (`__inputs`, `__requires`) is read by Grafana's import and is not
  // part of the dashboard model the schema describes.
  const { __inputs, __requires, ...model } = dash;
  const lines = [header, `export const dashboard_${name} = ${JSON.stringify(model, null, 2)} satisfies Lit<Dashboard>;`];
  const panels = [];
  for (const p of dash.panels ?? []) {
    panels.push(p);
    for (const q of p.panels ?? []) panels.push(q);
  }
  for (const p of panels) {
    if (p.type === 'row') continue;
    const plugin = PLUGINS[p.type];
    if (!plugin) {
      problems.push(`${file}: panel ${p.id} "${p.title}": no schema for panel type \`${p.type}\``);
      continue;
    }
    const custom = plugin.custom ? `Part<${p.type}.FieldConfig>` : 'undefined';
    lines.push(`export const panel_${name}_${p.id} = ${JSON.stringify({ options: p.options, custom: p.fieldConfig?.defaults?.custom }, null, 2)} satisfies { options?: Part<${p.type}.Options>; custom?: ${custom} };`);
  }
  writeFileSync(join(out, `${name}.ts`), lines.join('\n\n') + '\n');
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
writeFileSync(join(out, 'tsconfig.json'), JSON.stringify({
  compilerOptions: {
    strict: true, noEmit: true, target: 'es2022', module: 'esnext', moduleResolution: 'bundler',
    skipLibCheck: true, types: [],
  },
  include: ['*.ts'],
}, null, 2));
try {
  execFileSync(process.execPath, [join(here, 'node_modules/typescript/bin/tsc'), '-p', join(out, 'tsconfig.json')], { stdio: 'inherit' });
} catch {
  console.error(`tsc found errors in the dashboards (generated sources in ${out})`);
  process.exit(1);
}
console.log(`${files.length} dashboards typecheck against @grafana/schema`);
