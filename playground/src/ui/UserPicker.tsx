/**
 * Picking people for a group: one's friends at once, and whoever the
 * server finds (searchUsers) as a name is typed. Those picked show as
 * chips. Enter picks the first suggestion; Backspace in an empty field
 * takes off the last chip.
 */
import { useEffect, useState } from 'react';
import { useQuery } from 'urql';

import { Friends, SearchUsers } from '../api/operations';
import type { UserFieldsFragment } from '../gql/graphql';
import { t } from '../i18n';
import { Avatar, displayName } from './parts';

/** Wait for a pause in typing before asking the server. */
const SEARCH_DELAY_MS = 250;
const SUGGESTED = 8;

interface Props {
  picked: UserFieldsFragment[];
  onChange(picked: UserFieldsFragment[]): void;
  /** Identities not to suggest: the group's members. */
  exclude?: string[];
  label: string;
}

export function UserPicker({ picked, onChange, exclude = [], label }: Props) {
  const [draft, setDraft] = useState('');
  const [query, setQuery] = useState('');
  useEffect(() => {
    const timer = window.setTimeout(() => setQuery(draft.trim()), SEARCH_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [draft]);
  const [friends] = useQuery({ query: Friends });
  const [found] = useQuery({ query: SearchUsers, variables: { query }, pause: !query });

  const needle = draft.trim().toLowerCase();
  const matches = (user: UserFieldsFragment) =>
    user.username.toLowerCase().startsWith(needle) || user.nickname.toLowerCase().startsWith(needle);
  const taken = new Set([...exclude, ...picked.map((user) => user.identity)]);
  // Friends first; then the search's answer, which may be for what was
  // typed a moment ago, so it is narrowed to what is typed now.
  const candidates = [...(friends.data?.friends ?? []), ...(query ? (found.data?.searchUsers ?? []) : [])];
  const suggestions = candidates
    .filter((user, at) => matches(user) && !taken.has(user.identity) && candidates.findIndex((u) => u.identity === user.identity) === at)
    .slice(0, SUGGESTED);

  const pick = (user: UserFieldsFragment) => {
    onChange([...picked, user]);
    setDraft('');
  };
  return (
    <div className="picker" data-testid="user-picker">
      <div className="chips">
        {picked.map((user) => (
          <span key={user.identity} className="chip" data-testid="picked">
            {displayName(user)}
            <button
              type="button"
              aria-label={t('unpick', { name: displayName(user) })}
              onClick={() => onChange(picked.filter((other) => other.identity !== user.identity))}
            >
              ×
            </button>
          </span>
        ))}
        <input
          name="people"
          value={draft}
          autoComplete="off"
          aria-label={label}
          placeholder={t('pickPeople')}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={(event) => {
            const first = suggestions[0];
            if (event.key === 'Enter' && needle && first) {
              event.preventDefault();
              pick(first);
            } else if (event.key === 'Backspace' && !draft && picked.length > 0) {
              onChange(picked.slice(0, -1));
            }
          }}
        />
      </div>
      {suggestions.length > 0 ? (
        <ul className="suggestions">
          {suggestions.map((user) => (
            <li key={user.identity}>
              <button type="button" className="user" onClick={() => pick(user)} data-testid="suggestion">
                <Avatar name={displayName(user)} image={user.avatar} small />
                <span>
                  {displayName(user)} <span className="hint">@{user.username}</span>
                </span>
              </button>
            </li>
          ))}
        </ul>
      ) : (
        needle && query === draft.trim() && !found.fetching && <p className="hint">{t('noUsersFound')}</p>
      )}
    </div>
  );
}
