/**
 * What GraphQL clients are written to, checked with their own libraries in
 * Node (no browser page):
 *
 * - the GraphQL-over-HTTP spec, by its authors' audit (graphql-http's
 *   `auditServer`): no MUST and no SHOULD may fail;
 * - null propagation: each case of tests/fixtures/null_propagation.json,
 *   whose `data` the Rust tests get from the server, is what graphql-js's
 *   own executor gives for the same schema and the same failed fields;
 * - automatic persisted queries, by Apollo Client's persisted-queries link
 *   and urql's persistedExchange: asked for the document once, then by
 *   its hash alone, as a GET;
 * - GraphQL over Server-Sent Events, by the graphql-sse client: a query,
 *   and a room's messages from a cursor on.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { expect, test } from '@playwright/test';
import { buildSchema, execute, parse, responsePathAsArray, type GraphQLFieldResolver } from 'graphql';
import { auditServer } from 'graphql-http';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { Client, fetchExchange } from '@urql/core';
import { persistedExchange } from '@urql/exchange-persisted';
import { createClient as createSseClient } from 'graphql-sse';

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

/** A fetch that notes each request: its method, and whether it carried the document. */
function recording() {
  const seen: string[] = [];
  const recorded: typeof fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const method = init?.method ?? 'GET';
    const body = typeof init?.body === 'string' ? JSON.parse(init.body) : {};
    const whole = url.searchParams.has('query') || typeof body.query === 'string';
    const hashed = (url.searchParams.get('extensions') ?? JSON.stringify(body.extensions ?? {})).includes('sha256Hash');
    seen.push(`${method} ${whole ? 'document' : 'hash'}${hashed ? '+hash' : ''}`.replace('hash+hash', 'hash'));
    return fetch(input, init);
  };
  return { seen, recorded };
}

async function tokenOf(username: string): Promise<string> {
  await server.account(username, 'password123');
  const { login } = await server.graphql<{ login: { token: string } }>(
    '',
    'mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }',
    { u: username, p: 'password123' },
  );
  return login.token;
}

const ME = 'query PersistedMe { me { username } }';

test('Apollo Client sends a persisted query by its hash once the server knows it', async () => {
  const token = await tokenOf('apollo');
  const { seen, recorded } = recording();
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: new PersistedQueryLink({
      sha256: (text: string) => createHash('sha256').update(text).digest('hex'),
      useGETForHashedQueries: true,
    }).concat(new HttpLink({ uri: `${server.url}/graphql`, fetch: recorded, headers: { authorization: `Bearer ${token}` } })),
  });
  for (let i = 0; i < 2; i++) {
    const { data } = await client.query<{ me: { username: string } }>({ query: gql(ME), fetchPolicy: 'network-only' });
    expect(data?.me.username).toBe('apollo');
  }
  expect(seen).toEqual(['GET hash', 'POST document+hash', 'GET hash']);
});

test("urql's persistedExchange sends a persisted query by its hash once the server knows it", async () => {
  const token = await tokenOf('urql');
  const { seen, recorded } = recording();
  const client = new Client({
    url: `${server.url}/graphql`,
    fetch: recorded,
    fetchOptions: { headers: { authorization: `Bearer ${token}` } },
    requestPolicy: 'network-only',
    exchanges: [persistedExchange({ preferGetForPersistedQueries: true }), fetchExchange],
  });
  for (let i = 0; i < 2; i++) {
    const result = await client.query<{ me: { username: string } }>(ME, {}).toPromise();
    expect(result.error).toBeUndefined();
    expect(result.data?.me.username).toBe('urql');
  }
  // urql sends the document by GET too, as its option asks.
  expect(seen).toEqual(['GET hash', 'GET document+hash', 'GET hash']);
});

test('the graphql-sse client queries and follows a room over Server-Sent Events', async () => {
  const [ann, bob] = [await tokenOf('sseann'), await tokenOf('ssebob')];
  const { addFriend } = await server.graphql<{ addFriend: { identity: string } }>(
    ann,
    'mutation($u: String!) { addFriend(username: $u) { identity } }',
    { u: 'ssebob' },
  );
  const room = addFriend.identity;
  const send = (content: string) =>
    server.graphql<{ sendMessage: { cursor: string } }>(
      ann,
      'mutation($r: ID!, $c: String!) { sendMessage(roomIdentity: $r, content: $c) { cursor } }',
      { r: room, c: content },
    );
  const { sendMessage: first } = await send('first');
  await send('missed');

  const client = createSseClient({ url: `${server.url}/graphql`, headers: { authorization: `Bearer ${bob}` } });
  try {
    const me = client.iterate<{ me: { username: string } }>({ query: '{ me { username } }' });
    const answer = await me.next();
    expect(answer.value?.data?.me.username).toBe('ssebob');
    expect((await me.next()).done).toBe(true);

    const messages = client.iterate<{ messages: { content: string } }>({
      query: 'subscription($r: ID!, $a: String) { messages(roomIdentity: $r, after: $a) { content } }',
      variables: { r: room, a: first.cursor },
    });
    expect((await messages.next()).value?.data?.messages.content).toBe('missed');
    await send('live');
    expect((await messages.next()).value?.data?.messages.content).toBe('live');
    await messages.return?.();
  } finally {
    client.dispose();
  }
});
