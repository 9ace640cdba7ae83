/**
 * A search box over the messages of all one's rooms. While a search is
 * on, its finds take the place of the room list (given as `children`):
 * newest first, each with its sender, room, time and the words around
 * what was searched for, and more on demand. A find opens its room at it.
 */
import { useRef, useState, type FormEvent, type ReactNode } from 'react';
import { useClient, type CombinedError } from 'urql';

import { SearchMessages } from '../api/operations';
import type { RoomFieldsFragment, UserFieldsFragment } from '../gql/graphql';
import { t } from '../i18n';
import { ErrorLine, displayName, time } from './parts';
import type { Message } from './roomState';
import { roomTitle } from './RoomList';

interface Props {
  rooms: RoomFieldsFragment[];
  viewer: UserFieldsFragment;
  onOpen(message: Message): void;
  children: ReactNode;
}

export function MessageSearch({ rooms, viewer, onOpen, children }: Props) {
  const client = useClient();
  const [draft, setDraft] = useState('');
  const [query, setQuery] = useState('');
  const [found, setFound] = useState<Message[]>([]);
  // Where the next page starts, while there is one.
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<CombinedError | null>(null);
  const [fetching, setFetching] = useState(false);
  // Only the answer to the latest search counts.
  const latest = useRef(0);

  const search = async (words: string, after: string | null) => {
    const asked = ++latest.current;
    setFetching(true);
    const result = await client.query(SearchMessages, { query: words, after }).toPromise();
    if (asked !== latest.current) return;
    setFetching(false);
    setError(result.error ?? null);
    const page = result.data?.searchMessages;
    if (!page) return;
    const messages = page.edges.map((edge) => edge.node);
    setFound((shown) => (after ? [...shown, ...messages] : messages));
    setNext(page.pageInfo.hasNextPage ? (page.pageInfo.endCursor ?? null) : null);
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const words = draft.trim();
    if (!words) return;
    setQuery(words);
    setFound([]);
    setNext(null);
    void search(words, null);
  };
  const clear = () => {
    latest.current += 1;
    setDraft('');
    setQuery('');
    setFound([]);
    setNext(null);
    setError(null);
    setFetching(false);
  };
  const roomOf = (message: Message): string => {
    const room = rooms.find((candidate) => candidate.identity === message.roomIdentity);
    return room ? roomTitle(room, viewer) : '';
  };

  return (
    <>
      <form className="row" onSubmit={submit} role="search" data-testid="message-search">
        <input
          name="messageQuery"
          type="search"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          placeholder={t('searchMessages')}
          aria-label={t('searchMessages')}
        />
        {query && (
          <button type="button" className="quiet" aria-label={t('clearSearch')} title={t('clearSearch')} onClick={clear}>
            ×
          </button>
        )}
        <button type="submit">{t('search')}</button>
      </form>
      {query ? (
        <section className="found" aria-label={t('searchResults')} data-testid="search-results">
          <ErrorLine error={error} />
          {!fetching && !error && found.length === 0 && <p className="hint">{t('noMessagesFound')}</p>}
          <ul>
            {found.map((message) => (
              <li key={message.identity}>
                <button className="found-message" onClick={() => onOpen(message)} data-testid="search-result">
                  <span className="found-head">
                    <strong>{displayName(message.sender)}</strong>
                    <span className="found-room">{roomOf(message)}</span>
                    <time dateTime={message.createdAt}>{time(message.createdAt)}</time>
                  </span>
                  <Snippet content={message.content} query={query} />
                </button>
              </li>
            ))}
          </ul>
          {next && (
            <button className="quiet" disabled={fetching} onClick={() => void search(query, next)} data-testid="more-results">
              {t('moreResults')}
            </button>
          )}
        </section>
      ) : (
        children
      )}
    </>
  );
}

/** Characters shown before the first word found, and in all. */
const LEAD = 30;
const SHOWN = 140;

/** The words around the first one searched for, each searched word marked. */
function Snippet({ content, query }: { content: string; query: string }) {
  const words = query.split(/\s+/).filter(Boolean).map(escapeRegExp);
  const pattern = new RegExp(`(${words.join('|')})`, 'iu');
  const at = Math.max(content.search(pattern), 0);
  let start = Math.max(at - LEAD, 0);
  // Not between the halves of a character outside the BMP (an emoji).
  if (/[\uDC00-\uDFFF]/.test(content.charAt(start))) start -= 1;
  let end = Math.min(start + SHOWN, content.length);
  if (/[\uD800-\uDBFF]/.test(content.charAt(end - 1))) end -= 1;
  const shown = `${start > 0 ? '…' : ''}${content.slice(start, end)}${end < content.length ? '…' : ''}`;
  // Split by a capturing pattern: the words found are every other part.
  const parts = shown.split(new RegExp(pattern.source, 'giu'));
  return (
    <span className="snippet" data-testid="snippet">
      {parts.map((part, index) => (index % 2 === 1 ? <mark key={index}>{part}</mark> : part))}
    </span>
  );
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
