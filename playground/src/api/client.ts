/**
 * One connection to the chatroom server per signed-in session: urql for
 * queries and mutations over HTTP, and a graphql-ws socket for
 * subscriptions that reconnects by itself, forever, with backoff.
 */
import { Client, fetchExchange, mapExchange, subscriptionExchange, type CombinedError } from 'urql';
import { createClient as createSocket, type Client as Socket } from 'graphql-ws';

export type LinkState = 'connecting' | 'online' | 'offline';

export interface Connection {
  readonly urql: Client;
  /** State of the socket, and a count of how often it has (re)connected. */
  readonly link: { state: LinkState; generation: number };
  watch(listener: () => void): () => void;
  close(): void;
}

/** The server's close code for a connection_init it refuses (API.md). */
const FORBIDDEN = 4403;

export const graphqlUrl = (): string => new URL('/graphql', window.location.href).toString();

const socketUrl = (): string => {
  const url = new URL('/graphql', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
};

export const isUnauthenticated = (error: CombinedError): boolean =>
  error.graphQLErrors.some((e) => e.extensions?.code === 'UNAUTHENTICATED');

/**
 * `onSignedOut` runs when the server no longer accepts the token (it
 * expired, or the secret changed): the only cure is to sign in again.
 */
export function connect(token: string | null, onSignedOut: () => void): Connection {
  const listeners = new Set<() => void>();
  let link: Connection['link'] = { state: 'connecting', generation: 0 };
  const setLink = (next: Connection['link']) => {
    link = next;
    listeners.forEach((listener) => listener());
  };

  const socket: Socket = createSocket({
    url: socketUrl(),
    connectionParams: token ? { token } : {},
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
      connecting: () => setLink({ ...link, state: 'connecting' }),
      connected: () => setLink({ state: 'online', generation: link.generation + 1 }),
      closed: (event) => {
        setLink({ ...link, state: 'offline' });
        if (event instanceof CloseEvent && event.code === FORBIDDEN) onSignedOut();
      },
    },
  });

  const urql = new Client({
    url: graphqlUrl(),
    // No cache: a chat is live data, and every view asks for what it shows.
    requestPolicy: 'network-only',
    fetchOptions: () => (token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    exchanges: [
      mapExchange({
        onError(error) {
          if (token && isUnauthenticated(error)) onSignedOut();
        },
      }),
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
    close() {
      listeners.clear();
      void socket.dispose();
    },
  };
}
