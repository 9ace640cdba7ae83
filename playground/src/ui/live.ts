/**
 * Subscriptions that survive a server restart. A server that shuts down
 * gracefully completes every subscription before closing the socket, so the
 * socket's own retry has nothing left to resume: each live view subscribes
 * again on every (re)connect, with variables read at that moment (a room
 * asks for what came after the last message it shows).
 */
import { useEffect, useRef } from 'react';
import { useClient, type AnyVariables, type CombinedError, type TypedDocumentNode } from 'urql';

import { useLink } from './session';

interface Live<Data, Variables> {
  variables(): Variables | Promise<Variables>;
  onData(data: Data): void;
  onError?(error: CombinedError): void;
}

/** `key` null holds the subscription back; a new key starts it over. */
export function useLive<Data, Variables extends AnyVariables>(
  query: TypedDocumentNode<Data, Variables>,
  key: string | null,
  live: Live<Data, Variables>,
): void {
  const client = useClient();
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
        if (result.data) latest.current.onData(result.data);
        if (result.error) latest.current.onError?.(result.error);
      }));
    });
    return () => {
      stopped = true;
      unsubscribe?.();
    };
  }, [client, query, key, generation]);
}
