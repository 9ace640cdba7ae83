/**
 * What GraphQL clients are written to, checked with their own libraries in
 * Node (no browser page):
 *
 * - the GraphQL-over-HTTP spec, by its authors' audit (graphql-http's
 *   `auditServer`): no MUST and no SHOULD may fail;
 * - null propagation: each case of tests/fixtures/null_propagation.json,
 *   whose `data` the Rust tests get from the server, is what graphql-js's
 *   own executor gives for the same schema and the same failed fields.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { expect, test } from '@playwright/test';
import { buildSchema, execute, parse, responsePathAsArray, type GraphQLFieldResolver } from 'graphql';
import { auditServer } from 'graphql-http';

import { Server } from './server';

let server: Server;

test.beforeAll(async () => {
  server = await Server.start();
});

test.afterAll(async () => {
  await server.stop();
});

test('the GraphQL-over-HTTP audit finds no MUST or SHOULD failing', async () => {
  const results = await auditServer({ url: `${server.url}/graphql` });
  expect(results.length).toBeGreaterThan(50);
  const failing = results
    .filter((result) => result.status !== 'ok' && !result.name.startsWith('MAY'))
    .map((result) => `${result.id} ${result.name}: ${'reason' in result ? result.reason : ''}`);
  expect(failing).toEqual([]);
  // Every audit ran: a MAY that fails is a choice, said here.
  const notices = results.filter((result) => result.status !== 'ok').map((result) => result.name);
  expect(notices).toEqual([]);
});

interface NullCase {
  name: string;
  query: string;
  failing: (string | number)[][];
  complete: Record<string, unknown>;
  data: unknown;
}

const repo = resolve(import.meta.dirname, '../..');
const cases: NullCase[] = JSON.parse(readFileSync(resolve(repo, 'tests/fixtures/null_propagation.json'), 'utf8'));
const schema = buildSchema(readFileSync(resolve(repo, 'schema.graphql'), 'utf8'));

for (const nullCase of cases) {
  test(`graphql-js agrees: ${nullCase.name}`, async () => {
    const failing = new Set(nullCase.failing.map((path) => JSON.stringify(path)));
    // Every field answers from `complete`, but those of `failing` throw.
    const fieldResolver: GraphQLFieldResolver<Record<string, unknown>, unknown> = (source, _args, _context, info) => {
      if (failing.has(JSON.stringify(responsePathAsArray(info.path)))) {
        throw new Error('failed');
      }
      return source[info.path.key as string];
    };
    const result = await execute({
      schema,
      document: parse(nullCase.query),
      rootValue: nullCase.complete,
      fieldResolver,
      variableValues: { nobody: 'nobody', room: 'r', bob: 'bob' },
    });
    expect(result.data ?? null).toEqual(nullCase.data);
    expect((result.errors ?? []).map((error) => error.path)).toEqual(nullCase.failing);
  });
}
