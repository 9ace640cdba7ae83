/**
 * A chatroom server of the tests' own: the binary the Rust build made, on a
 * free port, with a fresh data dir (SQLite store, dev outbox). It can be
 * stopped and started again on the same port and data, as a restart is.
 * Settings of a test's own (a short token lifetime, say) go in `env`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const binary = process.env.CHATROOM_BIN ?? resolve(import.meta.dirname, '../../target/debug/chatroom');

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? done(address.port) : fail(new Error('no port'))));
    });
  });
}

export class Server {
  private process: ChildProcess | null = null;
  private log = '';

  private constructor(
    readonly port: number,
    readonly dataDir: string,
    private readonly env: Record<string, string>,
  ) {}

  /** `env`: CHATROOM_* settings on top of the tests' own, e.g. `{ CHATROOM_JWT_TTL: '20' }`. */
  static async start(env: Record<string, string> = {}): Promise<Server> {
    const server = new Server(await freePort(), mkdtempSync(join(tmpdir(), 'chatroom-e2e-')), env);
    await server.up();
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    this.process = spawn(binary, [], {
      env: {
        ...process.env,
        CHATROOM_LISTEN: `127.0.0.1:${this.port}`,
        CHATROOM_DATA_DIR: this.dataDir,
        RUST_LOG: 'chatroom=warn',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer) => {
      this.log += chunk.toString();
    };
    this.process.stdout?.on('data', collect);
    this.process.stderr?.on('data', collect);
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const answer = await fetch(`${this.url}/readyz`);
        if (answer.ok) return;
      } catch {
        // not listening yet
      }
      if (this.process.exitCode !== null) throw new Error(`chatroom exited:\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`chatroom did not get ready:\n${this.log}`);
      await new Promise((wait) => setTimeout(wait, 100));
    }
  }

  /** SIGTERM, as a service manager stops it, and wait for the exit. */
  async down(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((done) => child.once('exit', done));
    child.kill('SIGTERM');
    await exited;
    this.process = null;
  }

  async stop(): Promise<void> {
    await this.down();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** The code in the newest mail to `email` in the dev outbox. */
  async codeFor(email: string): Promise<string> {
    const outbox = join(this.dataDir, 'outbox');
    const deadline = Date.now() + 10_000;
    for (;;) {
      const mails = readdirSync(outbox, { withFileTypes: true })
        .filter((entry) => entry.isFile() && entry.name.endsWith('.eml'))
        .map((entry) => join(outbox, entry.name))
        .map((path) => ({ path, text: readFileSync(path, 'utf8'), at: statSync(path).mtimeMs }))
        .filter((mail) => mail.text.includes(email))
        .sort((a, b) => b.at - a.at);
      const code = mails[0]?.text.match(/code is: (\d{6})/)?.[1];
      if (code) return code;
      if (Date.now() > deadline) throw new Error(`no code mailed to ${email}`);
      await new Promise((wait) => setTimeout(wait, 100));
    }
  }

  /** A GraphQL request as `token` (none if empty), for what the test does around the UI. */
  async graphql<T>(token: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const answer = await fetch(`${this.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await answer.json()) as { data?: T; errors?: unknown[] };
    if (body.errors || !body.data) throw new Error(`GraphQL failed: ${JSON.stringify(body.errors)}`);
    return body.data;
  }

  /** An account made over the API (code from the outbox), for tests whose
   * subject is not registration. */
  async account(username: string, password: string): Promise<void> {
    const email = `${username}@example.com`;
    await this.graphql('', 'mutation($e: String!) { sendEmailCode(email: $e) { expiresIn } }', { e: email });
    const code = await this.codeFor(email);
    await this.graphql('', 'mutation($i: RegisterInput!) { register(input: $i) { token } }', {
      i: { email, code, username, password },
    });
  }
}
