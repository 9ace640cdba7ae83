import { defineConfig } from '@playwright/test';

/**
 * End-to-end tests of the web client in Debian's Chromium (Playwright's own
 * browser download is neither needed nor reachable). The tests start the
 * chatroom server themselves (e2e/server.ts), since one of them restarts it.
 */
export default defineConfig({
  testDir: 'e2e',
  timeout: 180_000,
  expect: { timeout: 15_000 },
  workers: 1,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    browserName: 'chromium',
    actionTimeout: 15_000,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      // Flags that keep Chromium from reaching for Google's services: this
      // machine has no internet, and the tests prove the pages need none.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
