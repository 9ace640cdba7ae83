/**
 * Subscriptions that survive a server restart. A server that shuts down
 * gracefully completes every subscription before closing the socket, so the
 * socket's own retry has nothing left to resume: each live view subscribes
 * again on every (re)connect, with variables read at that moment (a room
 * asks for what came after the last event it saw).
 *
 * A socket that drops without that goodbye is another matter: graphql-ws
 * sends the old subscription again, with its old variables, as soon as it
 * reconnects, until this hook replaces it. What that stale copy delivers
 * would replay from an outdated cursor, so it is dropped.
 */
import { useEffect, useRef } from 'react';
import { useClient, type AnyVariables, type CombinedError, type TypedDocumentNode } from 'urql';

import { useLink, useSession } from './session';

interface Live<Data, Variables> {
  variables(): Variables | Promise<Variables>;
  onData(data: Data): void;
  onError?(error: CombinedError): void;
  /** The server ended the subscription (not our own unsubscribing). */
  onEnd?(): void;
}

/** `key` null holds the subscription back; a new key starts it over. */
export function useLive<Data, Variables extends AnyVariables>(
  query: TypedDocumentNode<Data, Variables>,
  key: string | null,
  live: Live<Data, Variables>,
): void {
  const client = useClient();
  const { connection } = useSession();
  const { generation } = useLink();
  const latest = useRef(live);
  latest.current = live;

  useEffect(() => {
    // Generation 0: the socket has not connected yet; subscribing now
    // would only be repeated when it does.
    if (key === null || generation === 0) return;
    let unsubscribe: (() => void) | null = null;
    let stopped = false;
    void Promise.resolve(latest.current.variables()).then((variables) => {
      if (stopped) return;
      ({ unsubscribe } = client.subscription(query, variables).subscribe((result) => {
        if (connection.link.generation !== generation) return;
        if (result.error) latest.current.onError?.(result.error);
        // urql ends a subscription with its last result again, marked
        // hasNext: false; it is no new data.
        if (result.hasNext === false) latest.current.onEnd?.();
        else if (result.data) latest.current.onData(result.data);
      }));
    });
    return () => {
      stopped = true;
      unsubscribe?.();
    };
  }, [client, connection, query, key, generation]);
}
