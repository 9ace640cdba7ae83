import { useMutation, useQuery } from 'urql';

import { BlockedUsers, UnblockUser } from '../api/operations';
import { t } from '../i18n';
import { Avatar, ErrorLine, displayName } from './parts';

/** The people the viewer has blocked, each with a way back. */
export function BlockedList() {
  const [blocked, refetch] = useQuery({ query: BlockedUsers });
  const [unblocking, unblock] = useMutation(UnblockUser);
  const users = blocked.data?.blockedUsers ?? [];
  return (
    <section className="card" aria-label={t('blockedUsers')} data-testid="blocked-users">
      <h3>{t('blockedUsers')}</h3>
      <ErrorLine error={blocked.error ?? unblocking.error} />
      {blocked.data && users.length === 0 && <p className="hint">{t('noBlockedUsers')}</p>}
      {users.length > 0 && (
        <ul className="users">
          {users.map((user) => (
            <li key={user.identity} className="row blocked-user" data-testid="blocked-user">
              <Avatar name={displayName(user)} image={user.avatar} small />
              <span className="grow">
                {displayName(user)} <span className="hint">@{user.username}</span>
              </span>
              <button
                type="button"
                className="quiet"
                disabled={unblocking.fetching}
                onClick={async () => {
                  await unblock({ username: user.username });
                  refetch({ requestPolicy: 'network-only' });
                }}
                data-testid="unblock"
              >
                {t('unblock')}
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
