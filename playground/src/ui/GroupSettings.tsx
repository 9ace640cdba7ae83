/**
 * A group's settings beside its chat: name and info (OWNER and ADMINs may
 * change them), the members with their roles and what the viewer may do
 * to each (API.md, "Who may do what"), adding people, and leaving. Every
 * change shows once its event comes back, as anyone else's change does.
 */
import { useState, type FormEvent } from 'react';
import { useClient, type CombinedError, type OperationResult } from 'urql';

import { AddMembers, LeaveRoom, RemoveMember, SetMemberRole, UpdateRoom } from '../api/operations';
import type { MemberRole, UserFieldsFragment } from '../gql/graphql';
import { t } from '../i18n';
import { Avatar, ConfirmButton, ErrorLine, displayName } from './parts';
import { PresenceDot } from './presence';
import type { Membership } from './roomState';
import { UserPicker } from './UserPicker';

export interface About {
  name: string;
  info: string;
}

interface Props {
  roomIdentity: string;
  about: About;
  memberships: Membership[];
  viewer: UserFieldsFragment;
  onLeft(): void;
  onClose(): void;
}

export function GroupSettings({ roomIdentity, about, memberships, viewer, onLeft, onClose }: Props) {
  const client = useClient();
  const [error, setError] = useState<CombinedError | null>(null);
  const role = memberships.find((m) => m.user.identity === viewer.identity)?.role ?? 'MEMBER';
  const act = async (answer: Promise<OperationResult>): Promise<boolean> => {
    const { error: failed } = await answer;
    setError(failed ?? null);
    return !failed;
  };
  const setRole = (username: string, next: MemberRole) =>
    act(client.mutation(SetMemberRole, { roomIdentity, username, role: next }).toPromise());
  const remove = (username: string) => act(client.mutation(RemoveMember, { roomIdentity, username }).toPromise());

  return (
    <aside className="settings" aria-label={t('groupSettings')} data-testid="group-settings">
      <header className="row">
        <h3>{t('groupSettings')}</h3>
        <button type="button" className="quiet" aria-label={t('close')} title={t('close')} onClick={onClose}>
          ×
        </button>
      </header>
      {role === 'MEMBER' ? (
        <div>
          <strong>{about.name}</strong>
          {about.info && <p className="hint">{about.info}</p>}
        </div>
      ) : (
        // Keyed by what the server holds: a rename by someone else shows here too.
        <AboutForm
          key={`${about.name}\n${about.info}`}
          about={about}
          onSave={(input) => act(client.mutation(UpdateRoom, { roomIdentity, input }).toPromise())}
        />
      )}
      <h4>
        {t('memberList')} ({memberships.length})
      </h4>
      <ul className="members">
        {memberships.map((membership) => (
          <MemberRow
            key={membership.user.identity}
            membership={membership}
            self={membership.user.identity === viewer.identity}
            viewerRole={role}
            onRole={(next) => void setRole(membership.user.username, next)}
            onRemove={() => void remove(membership.user.username)}
          />
        ))}
      </ul>
      <AddPeople
        exclude={memberships.map((m) => m.user.identity)}
        onAdd={(usernames) => act(client.mutation(AddMembers, { roomIdentity, usernames }).toPromise())}
      />
      <ErrorLine error={error} />
      <ConfirmButton
        label={t('leave')}
        question={t('leaveAsk')}
        testId="leave"
        onConfirm={async () => {
          if (await act(client.mutation(LeaveRoom, { roomIdentity }).toPromise())) onLeft();
        }}
      />
    </aside>
  );
}

function AboutForm({ about, onSave }: { about: About; onSave(input: About): Promise<boolean> }) {
  const [name, setName] = useState(about.name);
  const [info, setInfo] = useState(about.info);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void onSave({ name: name.trim(), info: info.trim() });
  };
  const unchanged = name.trim() === about.name && info.trim() === about.info;
  return (
    <form className="about" onSubmit={submit} data-testid="room-form">
      <label>
        {t('groupName')}
        <input name="name" value={name} onChange={(e) => setName(e.target.value)} required />
      </label>
      <label>
        {t('groupInfo')}
        <input name="info" value={info} onChange={(e) => setInfo(e.target.value)} />
      </label>
      <button type="submit" disabled={unchanged || !name.trim()}>
        {t('save')}
      </button>
    </form>
  );
}

interface MemberProps {
  membership: Membership;
  self: boolean;
  viewerRole: MemberRole;
  onRole(role: MemberRole): void;
  onRemove(): void;
}

/** The OWNER sets roles and removes anyone; an ADMIN removes only MEMBERs. */
function MemberRow({ membership, self, viewerRole, onRole, onRemove }: MemberProps) {
  const { user, role } = membership;
  const name = displayName(user);
  const owns = viewerRole === 'OWNER' && !self;
  const mayRemove = !self && (viewerRole === 'OWNER' || (viewerRole === 'ADMIN' && role === 'MEMBER'));
  return (
    <li className="member" data-testid="member">
      <Avatar name={name} image={user.avatar} small />
      <span className="member-name">
        {name}
        {self && ` (${t('you')})`} <span className="hint">@{user.username}</span>
      </span>
      <PresenceDot identity={user.identity} />
      <span className={`role ${role.toLowerCase()}`} data-testid="role">
        {t(`role${role}`)}
      </span>
      {(owns || mayRemove) && (
        <span className="member-actions">
          {owns && role === 'MEMBER' && (
            <button type="button" className="link-button" onClick={() => onRole('ADMIN')} data-testid="make-admin">
              {t('makeAdmin')}
            </button>
          )}
          {owns && role === 'ADMIN' && (
            <button type="button" className="link-button" onClick={() => onRole('MEMBER')} data-testid="make-member">
              {t('makeMember')}
            </button>
          )}
          {owns && (
            <ConfirmButton label={t('makeOwner')} question={t('handOver', { name })} onConfirm={() => onRole('OWNER')} testId="make-owner" />
          )}
          {mayRemove && (
            <ConfirmButton label={t('removeMember')} question={t('removeAsk', { name })} onConfirm={onRemove} testId="remove-member" />
          )}
        </span>
      )}
    </li>
  );
}

function AddPeople({ exclude, onAdd }: { exclude: string[]; onAdd(usernames: string[]): Promise<boolean> }) {
  const [picked, setPicked] = useState<UserFieldsFragment[]>([]);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (picked.length === 0) return;
    if (await onAdd(picked.map((user) => user.username))) setPicked([]);
  };
  return (
    <form className="add-people" onSubmit={submit} data-testid="add-members-form">
      <h4>{t('addMembers')}</h4>
      <UserPicker picked={picked} onChange={setPicked} exclude={exclude} label={t('addMembers')} />
      <button type="submit" disabled={picked.length === 0}>
        {t('add')}
      </button>
    </form>
  );
}
