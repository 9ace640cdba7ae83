/**
 * One connection to the chatroom server per signed-in session: urql for
 * queries and mutations over HTTP (as persisted queries), and a graphql-ws socket for
 * subscriptions that reconnects by itself, forever, with backoff. The
 * session's token may be replaced while it runs (a refresh): both read the
 * token of the moment, not the one it started with.
 */
import { Client, fetchExchange, mapExchange, subscriptionExchange, type CombinedError } from 'urql';
import { createClient as createSocket, type Client as Socket } from 'graphql-ws';
import { persistedExchange } from '@urql/exchange-persisted';

export type LinkState = 'connecting' | 'online' | 'offline';

export interface Connection {
  readonly urql: Client;
  /** State of the socket, and a count of how often it has (re)connected. */
  readonly link: { state: LinkState; generation: number };
  watch(listener: () => void): () => void;
  /** Use `token` from now on: at once over HTTP, and on a new socket. */
  renew(token: string): void;
  close(): void;
}

/** The server's close code for a connection_init it refuses, and for a
 * socket whose token expired or was revoked (API.md). */
const FORBIDDEN = 4403;

/** Our own close code for a socket left to reconnect with a renewed token
 * (graphql-ws retries after any 4xxx code that is not its protocol's). */
const RENEWED = 4000;

export const graphqlUrl = (): string => new URL('/graphql', window.location.href).toString();

const socketUrl = (): string => {
  const url = new URL('/graphql', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
};

export const isUnauthenticated = (error: CombinedError): boolean =>
  error.graphQLErrors.some((e) => e.extensions?.code === 'UNAUTHENTICATED');

export const isForbidden = (error: CombinedError): boolean =>
  error.graphQLErrors.some((e) => e.extensions?.code === 'FORBIDDEN');

/**
 * Operation context for a mutation that checks a password the user typed
 * (changePassword): its UNAUTHENTICATED means a wrong password, to show on
 * the form, not a session the server no longer accepts.
 */
export const checksPassword = { checksPassword: true } as const;

/**
 * `onSignedOut` runs when the server no longer accepts the token (it
 * expired, the password was changed in another session, or the secret
 * changed): over HTTP as UNAUTHENTICATED, on the socket as a 4403 close.
 * The only cure is to sign in again.
 */
export function connect(initialToken: string | null, onSignedOut: () => void): Connection {
  let token = initialToken;
  // A closed connection's late answers (a request in flight as the user
  // signed out) must not end the session that follows it.
  let closed = false;
  const signedOut = () => {
    if (!closed) onSignedOut();
  };
  const listeners = new Set<() => void>();
  let link: Connection['link'] = { state: 'connecting', generation: 0 };
  const setLink = (next: Connection['link']) => {
    link = next;
    listeners.forEach((listener) => listener());
  };
  // The socket of the moment, for `renew` to close.
  let current: WebSocket | null = null;

  const socket: Socket = createSocket({
    url: socketUrl(),
    // Read at every (re)connect, so a socket opened after a refresh presents the new token.
    connectionParams: () => (token ? { token } : {}),
    lazy: false,
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    // A restarting server closes with 1001 or drops the TCP connection;
    // either way we come back. Only a refused token is final.
    shouldRetry: (event) => !(event instanceof CloseEvent && event.code === FORBIDDEN),
    retryWait: async (retries) => {
      const delay = Math.min(250 * 2 ** retries, 5_000);
      await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random() / 2)));
    },
    on: {
      opened: (opened) => {
        current = opened as WebSocket;
      },
      connecting: () => setLink({ ...link, state: 'connecting' }),
      connected: () => setLink({ state: 'online', generation: link.generation + 1 }),
      closed: (event) => {
        const code = event instanceof CloseEvent ? event.code : null;
        // A reconnect of our own making is no outage to show.
        setLink({ ...link, state: code === RENEWED ? 'connecting' : 'offline' });
        if (code === FORBIDDEN) signedOut();
      },
    },
  });

  const urql = new Client({
    url: graphqlUrl(),
    // No cache: a chat is live data, and every view asks for what it shows.
    requestPolicy: 'network-only',
    // Called for every request: the token of the moment.
    fetchOptions: () => (token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    exchanges: [
      mapExchange({
        onError(error, operation) {
          if (token && isUnauthenticated(error) && !operation.context.checksPassword) signedOut();
        },
      }),
      // Automatic persisted queries: a document goes by its SHA-256 once
      // the server knows it, and a query as a GET short enough for a URL.
      persistedExchange({ preferGetForPersistedQueries: 'within-url-limit', enableForMutation: true }),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const payload = { ...request, query: request.query ?? '' };
          return {
            subscribe(sink) {
              return { unsubscribe: socket.subscribe(payload, sink) };
            },
          };
        },
      }),
    ],
  });

  return {
    urql,
    get link() {
      return link;
    },
    watch(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    renew(next) {
      token = next;
      // The server holds a socket to the token its connection_init carried
      // and closes it (4403) when that token expires: start a new socket,
      // which presents this token; graphql-ws subscribes again on it, as
      // the live views do on the new generation. A socket not open yet
      // will send this token anyway.
      if (current?.readyState === WebSocket.OPEN) current.close(RENEWED, 'token renewed');
    },
    close() {
      closed = true;
      listeners.clear();
      void socket.dispose();
    },
  };
}
