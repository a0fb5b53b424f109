/**
 * Debian's chromium driven by playwright-core (no browser download: `npx playwright install`
 * cannot reach the network here). Callers check `needTool('chromium', …)` first.
 */
import { chromium, type Browser } from 'playwright-core';
import { whichTool } from './tools.js';

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: whichTool('chromium') ?? '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
}
