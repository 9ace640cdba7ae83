/**
 * Relay's compiler accepts the server's schema.graphql and a Relay client's
 * operations (relay/operations: a refetchable fragment on Message, a room
 * refetched by `node(id:)`, a paginated history, the `messages` and
 * `roomEvents` subscriptions, `sendMessage`). It checks what a Relay store
 * needs of a schema: the `Node` interface, `Query.node`, connections. No
 * browser and no server: the compiler runs here, in Node.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { expect, test } from '@playwright/test';

const relay = resolve(import.meta.dirname, '../relay');
const compiler = resolve(import.meta.dirname, '../node_modules/.bin/relay-compiler');
const artifacts = join(relay, '__generated__');

/** Runs the compiler on relay/relay.config.json, whose paths are read from its folder. */
function compile(...flags: string[]) {
  return spawnSync(compiler, ['--output', 'quiet-with-errors', ...flags], {
    cwd: relay,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

test('relay-compiler compiles the Relay operations against schema.graphql', () => {
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts);

  const compiled = compile();
  expect(compiled.status, `${compiled.stdout}${compiled.stderr}`).toBe(0);
  for (const artifact of [
    'MessageItem_message.graphql.ts',
    'MessageItemRefetchQuery.graphql.ts',
    'RoomHistoryPaginationQuery.graphql.ts',
    'RoomViewQuery.graphql.ts',
    'RoomViewMessagesSubscription.graphql.ts',
    'RoomViewEventsSubscription.graphql.ts',
    'ComposerSendMessageMutation.graphql.ts',
  ]) {
    expect(existsSync(join(artifacts, artifact)), artifact).toBe(true);
  }

  const validated = compile('--validate');
  expect(validated.status, `${validated.stdout}${validated.stderr}`).toBe(0);
});
