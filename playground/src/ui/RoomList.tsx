import { useState, type FormEvent } from 'react';
import { useMutation } from 'urql';

import { CreateGroup } from '../api/operations';
import type { RoomFieldsFragment, UserFieldsFragment } from '../gql/graphql';
import { t } from '../i18n';
import { Avatar, ErrorLine, displayName, time } from './parts';
import { UserPicker } from './UserPicker';

/** A PRIVATE room is named after the other member; a GROUP by its name. */
export function roomTitle(room: RoomFieldsFragment, viewer: UserFieldsFragment): string {
  if (room.roomType === 'GROUP') return room.name;
  const other = room.members.find((member) => member.identity !== viewer.identity);
  return other ? displayName(other) : room.name;
}

interface Props {
  rooms: RoomFieldsFragment[];
  viewer: UserFieldsFragment;
  openRoom: string | null;
  onOpen(identity: string): void;
}

export function RoomList({ rooms, viewer, openRoom, onOpen }: Props) {
  const [creating, setCreating] = useState(false);
  return (
    <div className="rooms">
      {creating ? (
        <NewGroup
          onDone={(identity) => {
            setCreating(false);
            if (identity) onOpen(identity);
          }}
        />
      ) : (
        <button className="quiet" onClick={() => setCreating(true)} data-testid="new-group">
          + {t('newGroup')}
        </button>
      )}
      {rooms.length === 0 && <p className="hint">{t('noRooms')}</p>}
      <ul aria-label={t('chats')}>
        {rooms.map((room) => {
          const other = room.members.find((member) => member.identity !== viewer.identity);
          return (
            <li key={room.identity}>
              <button
                className={room.identity === openRoom ? 'room open' : 'room'}
                onClick={() => onOpen(room.identity)}
                data-testid="room"
              >
                <Avatar
                  name={roomTitle(room, viewer)}
                  image={room.roomType === 'PRIVATE' ? other?.avatar : null}
                />
                <span className="room-text">
                  <span className="room-title">{roomTitle(room, viewer)}</span>
                  <span className="room-last">
                    {room.lastMessage
                      ? `${displayName(room.lastMessage.sender)}: ${
                          room.lastMessage.deletedAt ? t('messageDeleted') : room.lastMessage.content
                        }`
                      : '\u00a0'}
                  </span>
                </span>
                <span className="room-meta">
                  {room.lastMessage && <time>{time(room.lastMessage.createdAt)}</time>}
                  {room.unreadCount > 0 && (
                    <span className="badge" data-testid="unread">
                      {room.unreadCount}
                    </span>
                  )}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
    </div>
  );
}

function NewGroup({ onDone }: { onDone(identity: string | null): void }) {
  const [name, setName] = useState('');
  const [info, setInfo] = useState('');
  const [members, setMembers] = useState<UserFieldsFragment[]>([]);
  const [result, create] = useMutation(CreateGroup);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const answer = await create({
      input: { name: name.trim(), info: info.trim(), members: members.map((user) => user.username) },
    });
    if (answer.data) onDone(answer.data.createGroup.identity);
  };
  return (
    <form className="card" onSubmit={submit} aria-label={t('newGroup')} data-testid="group-form">
      <label>
        {t('groupName')}
        <input name="name" value={name} onChange={(e) => setName(e.target.value)} required />
      </label>
      <label>
        {t('groupInfo')}
        <input name="info" value={info} onChange={(e) => setInfo(e.target.value)} />
      </label>
      <div className="field">
        {t('memberList')}
        <UserPicker picked={members} onChange={setMembers} label={t('memberList')} />
      </div>
      <ErrorLine error={result.error} />
      <div className="row">
        <button type="submit" disabled={result.fetching}>
          {t('create')}
        </button>
        <button type="button" className="quiet" onClick={() => onDone(null)}>
          {t('cancel')}
        </button>
      </div>
    </form>
  );
}
