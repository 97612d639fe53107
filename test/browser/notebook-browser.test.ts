// The kernel where most users meet it: classic Jupyter Notebook (Debian's jupyter-notebook) in headless Chromium,
// driven by selenium (test/support/browser-driver.py). A %remote cell's lines show while it runs, an endless
// %remote loop stops from the toolbar's interrupt button, and the next cell runs. Screenshots and the page's HTML of
// a failed run are kept in test-artifacts/browser.

import { expect } from 'chai';
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tmp from 'tmp-promise';

import { installKernelspec, JupyterEnv, PYTHON, REPO } from '../kernel-ext/kernel/jupyter-support';

const DRIVER = path.join(REPO, 'test', 'support', 'browser-driver.py');
const ARTIFACTS = path.join(REPO, 'test-artifacts', 'browser');
const PACKAGES = 'jupyter-notebook chromium chromium-driver python3-selenium';

interface Shown {
  prompt: string;
  output: string;
  errors: string[];
}

interface PageReport {
  while_running: { running: boolean; output: string };
  prints: Shown;
  endless: Shown;
  after: Shown;
}

/** Skips when the browser stack is missing, saying what to install; in CI (CI=true) that fails instead. */
function requireBrowser(context: Mocha.Context): void {
  const check = spawnSync(PYTHON, [DRIVER, 'check'], { encoding: 'utf8' });
  if (check.status === 0) return;
  const message = `${(check.stderr || check.error?.message || '').trim()}; install them with: apt-get install -y ${PACKAGES}`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: the browser test must run)`);
  console.log(`      skipped: ${message}`);
  context.skip();
}

describe('the kernel in classic Jupyter Notebook, in headless Chromium', function () {
  this.timeout(600_000);
  let jupyter: JupyterEnv | undefined;
  let work: tmp.DirectoryResult | undefined;

  before(async function () {
    requireBrowser(this);
    jupyter = await installKernelspec();
    work = await tmp.dir({ unsafeCleanup: true, prefix: 'tslab-remote-browser-' });
    fs.mkdirSync(path.join(work.path, 'notebooks'));
  });

  after(async () => {
    await jupyter?.cleanup();
    await work?.cleanup();
  });

  it('shows %remote output while it runs, interrupts an endless %remote from the toolbar, runs the next cell', async () => {
    const shots = path.join(work!.path, 'artifacts');
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        PYTHON,
        [DRIVER, 'run', path.join(work!.path, 'notebooks'), shots],
        { env: jupyter!.env, timeout: 540_000, maxBuffer: 64 * 1024 * 1024 },
        (error, out, err) => resolve({ code: error ? 1 : 0, stdout: out, stderr: err }),
      );
    });
    try {
      if (code !== 0) throw new Error(`the browser driver failed:\n${stderr}`);
      checkPage(JSON.parse(stdout) as PageReport);
    } catch (error) {
      (error as Error).message += `\n${keepArtifacts(shots, stdout)}`;
      throw error;
    }
  });
});

/** Copies the screenshot and the page's HTML (and the driver's report) to test-artifacts/browser; says where. */
function keepArtifacts(shots: string, report: string): string {
  const dir = path.join(ARTIFACTS, new Date().toISOString().replace(/[:.]/g, '-'));
  fs.mkdirSync(dir, { recursive: true });
  if (fs.existsSync(shots))
    for (const name of fs.readdirSync(shots)) fs.copyFileSync(path.join(shots, name), path.join(dir, name));
  fs.writeFileSync(path.join(dir, 'report.json'), report);
  const where = `browser test artifacts (screenshot, page HTML, report): ${dir}`;
  console.log(`      ${where}`);
  return where;
}

function checkPage(page: PageReport): void {
  // Lines on the page with the prompt still [*]: streamed, not shown at the end.
  expect(page.while_running.running, 'the cell was still running when its second line showed').to.equal(true);
  expect(page.while_running.output).to.include('step 1').and.include('step 2').and.not.include('step 4');
  expect(page.prints.errors).to.deep.equal([]);
  expect(page.prints.prompt).to.match(/In\s\[\d+\]/);
  const lines = page.prints.output.split('\n');
  const steps = ['step 1', 'step 2', 'step 3', 'step 4'].map((step) => lines.indexOf(step));
  expect(
    steps.every((at, i) => at >= 0 && (i === 0 || at > steps[i - 1]!)),
    page.prints.output,
  ).to.equal(true);
  expect(page.prints.output).to.match(/Out\[\d+\]:\s*'?done'?$/);
  // The elapsed time is not between two streamed lines: it ends up below them.
  const ran = lines.findIndex((line) => /^ran on local in \d+\.\d s$/.test(line));
  expect(ran, page.prints.output).to.be.greaterThan(steps[3]!);

  expect(page.endless.output).to.include('tick 2');
  expect(page.endless.errors.join('\n')).to.match(/^KeyboardInterrupt: .*cancelled/);

  expect(page.after.errors).to.deep.equal([]);
  expect(page.after.output).to.include('42');
}
