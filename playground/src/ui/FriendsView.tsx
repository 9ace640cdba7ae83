import { useEffect, useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';

import { AddFriend, BlockedUsers, BlockUser, Friends, RemoveFriend, SearchUsers, UnblockUser, UserProfile } from '../api/operations';
import type { UserFieldsFragment } from '../gql/graphql';
import { t } from '../i18n';
import { Avatar, ConfirmButton, ErrorLine, displayName } from './parts';
import { PresenceDot, usePresenceBook } from './presence';
import { useLink } from './session';

interface Props {
  onOpenRoom(identity: string): void;
  /** A friendship began or ended, and with it a PRIVATE room. */
  onRoomsChanged(): void;
}

/** Find people, see whether they are friends and online, befriend or
 * unfriend them, block or unblock them. */
export function FriendsView({ onOpenRoom, onRoomsChanged }: Props) {
  const [draft, setDraft] = useState('');
  const [query, setQuery] = useState('');
  const [selected, setSelected] = useState<string | null>(null);
  const [found] = useQuery({ query: SearchUsers, variables: { query }, pause: !query });
  const [friends, refetchFriends] = useQuery({ query: Friends });
  const presence = usePresenceBook();
  const { generation } = useLink();

  useEffect(() => {
    friends.data?.friends.forEach((friend) => presence.put(friend.identity, friend.presence));
  }, [friends.data, presence]);
  // Changes while the socket was down went unheard: ask again.
  useEffect(() => {
    if (generation > 1) refetchFriends({ requestPolicy: 'network-only' });
  }, [generation, refetchFriends]);

  const search = (event: FormEvent) => {
    event.preventDefault();
    setQuery(draft.trim());
  };
  return (
    <div className="friends">
      <form className="row" onSubmit={search} role="search" data-testid="search-form">
        <input
          name="query"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          placeholder={t('searchUsers')}
          aria-label={t('searchUsers')}
        />
        <button type="submit">{t('search')}</button>
      </form>
      <ErrorLine error={found.error} />
      {query && found.data && (
        <UserList users={found.data.searchUsers} empty={t('noUsersFound')} onPick={setSelected} testId="found" />
      )}
      {selected && (
        <ProfileCard
          username={selected}
          onOpenRoom={onOpenRoom}
          onChanged={() => {
            refetchFriends({ requestPolicy: 'network-only' });
            onRoomsChanged();
          }}
        />
      )}
      <h3>{t('yourFriends')}</h3>
      <ErrorLine error={friends.error} />
      <UserList users={friends.data?.friends ?? []} empty={t('noFriends')} onPick={setSelected} testId="friend" withPresence />
    </div>
  );
}

interface UserListProps {
  users: UserFieldsFragment[];
  empty: string;
  onPick(username: string): void;
  testId: string;
  withPresence?: boolean;
}

function UserList({ users, empty, onPick, testId, withPresence }: UserListProps) {
  if (users.length === 0) return <p className="hint">{empty}</p>;
  return (
    <ul className="users">
      {users.map((user) => (
        <li key={user.identity}>
          <button className="user" onClick={() => onPick(user.username)} data-testid={testId}>
            <Avatar name={displayName(user)} image={user.avatar} />
            <span>
              {displayName(user)} <span className="hint">@{user.username}</span>
            </span>
            {withPresence && <PresenceDot identity={user.identity} />}
          </button>
        </li>
      ))}
    </ul>
  );
}

interface ProfileCardProps {
  username: string;
  onOpenRoom(identity: string): void;
  onChanged(): void;
}

function ProfileCard({ username, onOpenRoom, onChanged }: ProfileCardProps) {
  const [profile, refetch] = useQuery({ query: UserProfile, variables: { username } });
  const [blockedUsers, refetchBlocked] = useQuery({ query: BlockedUsers });
  const [added, addFriend] = useMutation(AddFriend);
  const [removed, removeFriend] = useMutation(RemoveFriend);
  const [blocking, blockUser] = useMutation(BlockUser);
  const [unblocking, unblockUser] = useMutation(UnblockUser);
  const changed = () => {
    refetch({ requestPolicy: 'network-only' });
    refetchBlocked({ requestPolicy: 'network-only' });
    onChanged();
  };
  const shown = profile.data?.userProfile;
  const presence = usePresenceBook();
  useEffect(() => {
    if (shown) presence.put(shown.user.identity, shown.user.presence);
  }, [shown, presence]);
  const blocked = blockedUsers.data?.blockedUsers.some((user) => user.username === username) ?? false;
  const error = profile.error ?? added.error ?? removed.error ?? blocking.error ?? unblocking.error;
  return (
    <section className="card profile" aria-label={username} data-testid="profile">
      <ErrorLine error={error} />
      {shown && (
        <>
          <div className="row">
            <Avatar name={displayName(shown.user)} image={shown.user.avatar} />
            <strong>{displayName(shown.user)}</strong>
            <span className="hint">@{shown.user.username}</span>
            <PresenceDot identity={shown.user.identity} spelled />
          </div>
          <p data-testid="friendship">{shown.isFriend ? t('isFriend') : t('notFriend')}</p>
          {blocked && (
            <p className="hint" data-testid="blocked">
              {t('youBlocked', { name: displayName(shown.user) })}
            </p>
          )}
          <div className="row">
            {shown.isFriend ? (
              <>
                {shown.privateRoom && (
                  <button
                    onClick={() => shown.privateRoom && onOpenRoom(shown.privateRoom.identity)}
                    data-testid="open-chat"
                  >
                    {t('openChat')}
                  </button>
                )}
                <button
                  className="quiet danger"
                  data-testid="remove-friend"
                  onClick={async () => {
                    await removeFriend({ username });
                    changed();
                  }}
                >
                  {t('removeFriend')}
                </button>
              </>
            ) : (
              !blocked && (
                <button
                  data-testid="add-friend"
                  onClick={async () => {
                    const answer = await addFriend({ username });
                    changed();
                    if (answer.data) onOpenRoom(answer.data.addFriend.identity);
                  }}
                >
                  {t('addFriend')}
                </button>
              )
            )}
            {blocked ? (
              <button
                className="quiet"
                data-testid="unblock"
                onClick={async () => {
                  await unblockUser({ username });
                  changed();
                }}
              >
                {t('unblock')}
              </button>
            ) : (
              <ConfirmButton
                label={t('block')}
                question={t('blockAsk', { name: displayName(shown.user) })}
                testId="block"
                onConfirm={async () => {
                  await blockUser({ username });
                  changed();
                }}
              />
            )}
          </div>
        </>
      )}
    </section>
  );
}
