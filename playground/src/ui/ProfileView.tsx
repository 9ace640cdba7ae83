import { useState, type FormEvent } from 'react';
import { useMutation } from 'urql';

import { UpdateProfile } from '../api/operations';
import type { Sex, UserFieldsFragment } from '../gql/graphql';
import { t } from '../i18n';
import { ErrorLine } from './parts';

const SEXES: Sex[] = ['UNKNOWN', 'FEMALE', 'MALE'];

type Viewer = UserFieldsFragment & { email?: string | null; emailDigest?: boolean | null };

interface Props {
  viewer: Viewer;
  onSaved(): void;
}

export function ProfileView({ viewer, onSaved }: Props) {
  const [nickname, setNickname] = useState(viewer.nickname);
  const [sex, setSex] = useState<Sex>(viewer.sex);
  const [avatar, setAvatar] = useState(viewer.avatar ?? '');
  const [result, update] = useMutation(UpdateProfile);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const answer = await update({ input: { nickname: nickname.trim(), sex, avatar: avatar.trim() || null } });
    if (answer.data) onSaved();
  };
  return (
    <form className="card" onSubmit={submit} aria-label={t('profile')} data-testid="profile-form">
      <p className="hint">
        @{viewer.username}
        {viewer.email ? ` · ${viewer.email}` : ''}
      </p>
      <label>
        {t('nickname')}
        <input name="nickname" value={nickname} onChange={(e) => setNickname(e.target.value)} />
      </label>
      <label>
        {t('sex')}
        <select name="sex" value={sex} onChange={(e) => setSex(e.target.value as Sex)}>
          {SEXES.map((value) => (
            <option key={value} value={value}>
              {t(`sex${value}`)}
            </option>
          ))}
        </select>
      </label>
      <label>
        {t('avatar')}
        <input name="avatar" type="url" value={avatar} onChange={(e) => setAvatar(e.target.value)} placeholder="https://" />
      </label>
      <ErrorLine error={result.error} />
      {result.data && !result.error && <p role="status">{t('saved')}</p>}
      <button type="submit" disabled={result.fetching}>
        {t('save')}
      </button>
    </form>
  );
}

/** Whether the server mails the viewer a digest of what they missed while
 * away; saved as soon as it is ticked. */
export function DigestSetting({ viewer, onSaved }: Props) {
  // A new user gets digests.
  const [wanted, setWanted] = useState(viewer.emailDigest ?? true);
  const [result, update] = useMutation(UpdateProfile);
  const change = async (next: boolean) => {
    setWanted(next);
    const answer = await update({ input: { emailDigest: next } });
    if (answer.data) onSaved();
    else setWanted(!next);
  };
  return (
    <section className="card" aria-label={t('emailDigestTitle')} data-testid="digest-setting">
      <h3>{t('emailDigestTitle')}</h3>
      <label className="check">
        <input
          type="checkbox"
          name="emailDigest"
          checked={wanted}
          disabled={result.fetching}
          onChange={(e) => void change(e.target.checked)}
        />
        {t('emailDigest')}
      </label>
      <ErrorLine error={result.error} />
      {result.data && !result.error && <p role="status">{t('saved')}</p>}
    </section>
  );
}
