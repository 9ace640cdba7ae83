/**
 * What an open room shows, and how each of its events changes that. Every
 * event carries the state right after its change, so applying one is
 * replacing by identity: an event seen twice (a replay overlapping what a
 * query already returned) changes nothing the second time.
 */
import type { MembershipFieldsFragment, MessageFieldsFragment, UserFieldsFragment } from '../gql/graphql';

export type Message = MessageFieldsFragment;
export type Membership = MembershipFieldsFragment;

/** Put a message's current state in place of the one shown, and into the
 * quotes of the messages that answer it. Messages not shown are left out:
 * paging back brings their current state anyway. */
export function replaceMessage(shown: Message[], changed: Message): Message[] {
  return shown.map((message) => {
    if (message.identity === changed.identity) return changed;
    if (message.replyTo?.identity === changed.identity) {
      return {
        ...message,
        replyTo: { ...message.replyTo, content: changed.content, deletedAt: changed.deletedAt },
      };
    }
    return message;
  });
}

/**
 * `list`, which reaches the room's newest message, followed by the
 * messages that came live while the history shown stopped short of that
 * and are not in it. Those older than its end are changes to messages
 * further back, no news.
 */
export function withHeld(list: Message[], held: Message[]): Message[] {
  const end = list[list.length - 1];
  const news = held.filter(
    (message) =>
      !list.some((shown) => shown.identity === message.identity) &&
      (!end || Date.parse(message.createdAt) >= Date.parse(end.createdAt)),
  );
  return [...list, ...news];
}

/** A member's new state; a member not listed yet joined last. */
export function putMembership(memberships: Membership[], changed: Membership): Membership[] {
  const known = memberships.some((m) => m.user.identity === changed.user.identity);
  return known
    ? memberships.map((m) => (m.user.identity === changed.user.identity ? changed : m))
    : [...memberships, changed];
}

export const dropMembership = (memberships: Membership[], user: UserFieldsFragment): Membership[] =>
  memberships.filter((m) => m.user.identity !== user.identity);

/**
 * Where each member has read up to, as an index into `messages`: their
 * read receipt, or their own newest message if that is further on, since
 * a sender has read what they sent (the server does not move their read
 * position for it). -1 when neither is among the messages shown.
 */
export function readPositions(messages: Message[], memberships: Membership[]): Map<string, number> {
  const index = new Map(messages.map((message, at) => [message.cursor, at]));
  const lastSent = new Map<string, number>();
  messages.forEach((message, at) => lastSent.set(message.sender.identity, at));
  return new Map(
    memberships.map((m) => {
      const read = m.lastReadCursor ? (index.get(m.lastReadCursor) ?? -1) : -1;
      return [m.user.identity, Math.max(read, lastSent.get(m.user.identity) ?? -1)];
    }),
  );
}
