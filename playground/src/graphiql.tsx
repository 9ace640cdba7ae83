/**
 * GraphiQL for chatroom, bundled so it needs no CDN. Queries and mutations
 * go over HTTP with the headers from the header editor; subscriptions go
 * over graphql-ws, where the token belongs in connection_init: the
 * fetcher takes it from the `Authorization` header the user typed, with
 * one socket per distinct token.
 */
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';

import { createGraphiQLFetcher, type Fetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import { parse } from 'graphql';
import { createClient } from 'graphql-ws';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

const httpUrl = new URL('/graphql', window.location.href).toString();
const wsUrl = httpUrl.replace(/^http/, 'ws');

const fetchers = new Map<string, Fetcher>();

function fetcherFor(authorization: string): Fetcher {
  let fetcher = fetchers.get(authorization);
  if (!fetcher) {
    const token = authorization.replace(/^Bearer\s+/i, '').trim();
    fetcher = createGraphiQLFetcher({
      url: httpUrl,
      wsClient: createClient({ url: wsUrl, connectionParams: token ? { token } : {} }),
    });
    fetchers.set(authorization, fetcher);
  }
  return fetcher;
}

const fetcher: Fetcher = (params, options) => {
  const headers: Record<string, unknown> = options?.headers ?? {};
  const authorization = Object.entries(headers).find(([name]) => name.toLowerCase() === 'authorization')?.[1];
  // The toolkit picks the socket for subscriptions from `documentAST`, which
  // GraphiQL parses from the editor on a delay: a click right after typing
  // could send a subscription over HTTP. The text sent is what counts.
  let documentAST = options?.documentAST;
  try {
    documentAST = parse(params.query);
  } catch {
    // Not a document: the server answers with the syntax error.
  }
  return fetcherFor(typeof authorization === 'string' ? authorization : '')(params, { ...options, documentAST });
};

// A token from the chat client on this origin is offered as the header.
const token = localStorage.getItem('chatroom.token');
const headers = JSON.stringify(token ? { Authorization: `Bearer ${token}` } : { Authorization: 'Bearer ' }, null, 2);

const defaultQuery = `# Sign in with login (or register), put the token in the
# Authorization header below, then try a subscription:
#
# subscription { inbox { content sender { username } } }

{
  me { username nickname }
  rooms { identity name roomType unreadCount }
}
`;

const root = document.getElementById('graphiql');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <GraphiQL
        fetcher={fetcher}
        defaultQuery={defaultQuery}
        initialHeaders={headers}
        defaultHeaders={headers}
        defaultEditorToolsVisibility="headers"
      />
    </StrictMode>,
  );
}
