/**
 * Who is online. The queries that list people (friends, a room's members)
 * say how each was when they were read; the `presence` subscription, kept
 * by the signed-in screen, says each change after that. Both write here,
 * by user identity, and every dot shown for a user reads from here, so a
 * change shows everywhere at once.
 */
import { createContext, useContext, useSyncExternalStore } from 'react';

import type { PresenceFieldsFragment } from '../gql/graphql';
import { t } from '../i18n';
import { time } from './parts';

export type Presence = PresenceFieldsFragment;

export class PresenceBook {
  private readonly known = new Map<string, Presence | null>();
  private readonly listeners = new Set<() => void>();

  /** What the viewer may know of the user now; null hides it (a block). */
  put(identity: string, presence: Presence | null | undefined): void {
    this.known.set(identity, presence ?? null);
    this.listeners.forEach((listener) => listener());
  }

  get(identity: string): Presence | null {
    return this.known.get(identity) ?? null;
  }

  readonly watch = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };
}

export const PresenceContext = createContext<PresenceBook | null>(null);

export function usePresenceBook(): PresenceBook {
  const book = useContext(PresenceContext);
  if (!book) throw new Error('usePresenceBook outside PresenceContext');
  return book;
}

function usePresence(identity: string): Presence | null {
  const book = usePresenceBook();
  return useSyncExternalStore(book.watch, () => book.get(identity));
}

/** "online", "last seen …", or "offline" for one never seen. */
function presenceLabel(presence: Presence): string {
  if (presence.online) return t('presenceOnline');
  return presence.lastSeenAt ? t('lastSeen', { time: time(presence.lastSeenAt) }) : t('presenceOffline');
}

/** A green or grey dot, its words in the tooltip; with `spelled`, beside it
 * too. Nothing where the viewer may not know. */
export function PresenceDot({ identity, spelled }: { identity: string; spelled?: boolean }) {
  const presence = usePresence(identity);
  if (!presence) return null;
  const label = presenceLabel(presence);
  const state = presence.online ? 'online' : 'offline';
  return (
    <span className={`presence ${state}`} title={label} data-testid="presence" data-state={state}>
      <span className="presence-dot" role="img" aria-label={label} />
      {spelled && <span className="presence-text">{label}</span>}
    </span>
  );
}
