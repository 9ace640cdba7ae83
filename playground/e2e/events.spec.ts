/**
 * A room's events as people see them, in two browsers at once: one types
 * and the other sees it, reads and the first sees the receipt; reactions,
 * a reply, an edit and deletions show on both sides live. Once in English
 * and once in Chinese. Then a group's settings: rename, roles, removal,
 * handing the group over and leaving. Screenshots go to screenshots/ as in
 * chat.spec.ts.
 */
import { expect, test, type Browser, type Page } from '@playwright/test';

import { Server } from './server';

let server: Server;

test.beforeAll(async () => {
  server = await Server.start();
});

test.afterAll(async () => {
  await server?.stop();
});

const shot = (page: Page, name: string) => page.screenshot({ path: `screenshots/${name}.png` });

const passwordOf = (username: string) => `${username} has a long password`;

/** An account made over the API, signed in through the login form. */
async function signedIn(browser: Browser, locale: string, username: string): Promise<Page> {
  const context = await browser.newContext({ locale, viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  await page.goto(server.url);
  const form = page.getByTestId('login-form');
  await form.locator('input[name=username]').fill(username);
  await form.locator('input[name=password]').fill(passwordOf(username));
  await form.locator('button[type=submit]').click();
  await expect(page.getByTestId('viewer')).toHaveText(username);
  await expect(page.getByTestId('link')).toHaveClass(/online/);
  return page;
}

/** A group of `owner`'s with `members`, made over the API before anyone signs in. */
async function groupOf(owner: string, name: string, members: string[]): Promise<void> {
  const { login } = await server.graphql<{ login: { token: string } }>(
    '',
    'mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }',
    { u: owner, p: passwordOf(owner) },
  );
  await server.graphql(login.token, 'mutation($i: CreateGroupInput!) { createGroup(input: $i) { identity } }', {
    i: { name, members },
  });
}

async function openRoom(page: Page, title: string): Promise<void> {
  await page.getByTestId('tab-chats').click();
  await page.getByTestId('room').filter({ hasText: title }).click();
  await expect(page.locator('.chat-header h2')).toHaveText(title);
}

async function say(page: Page, text: string): Promise<void> {
  await page.locator('textarea[name=message]').fill(text);
  await page.locator('form.send button[type=submit]').click();
}

const messages = (page: Page) => page.getByTestId('messages').getByTestId('message');

/** The client's words each test looks for, per language. */
const WORDS = {
  'en-US': {
    typing: (name: string) => `${name} is typing…`,
    readBy: (name: string) => `Read by ${name}`,
    replyingTo: (name: string) => `Replying to ${name}`,
    reply: 'Reply',
    edited: 'edited',
    deleted: 'message deleted',
  },
  'zh-CN': {
    typing: (name: string) => `${name} 正在输入…`,
    readBy: (name: string) => `${name} 已读`,
    replyingTo: (name: string) => `回复 ${name}`,
    reply: '回复',
    edited: '已编辑',
    deleted: '消息已删除',
  },
};

for (const [locale, words] of Object.entries(WORDS)) {
  test(`two people type, read, react, reply, edit and delete, live (${locale})`, async ({ browser }) => {
    const tag = locale.slice(0, 2);
    const [annName, bobName, room] = [`ann_${tag}`, `bob_${tag}`, `Pair ${tag}`];
    await server.account(annName, passwordOf(annName));
    await server.account(bobName, passwordOf(bobName));
    await groupOf(annName, room, [bobName]);
    const ann = await signedIn(browser, locale, annName);
    const bob = await signedIn(browser, locale, bobName);
    await openRoom(ann, room);
    await openRoom(bob, room);

    await test.step('bob sees ann type, until she sends', async () => {
      // Typing is live only: what ann types before bob's subscription is in
      // place reaches nobody. Emptying the draft and typing again says it anew.
      const draft = ann.locator('textarea[name=message]');
      await expect(async () => {
        await draft.fill('');
        await draft.fill('hello there');
        await expect(bob.getByTestId('typing')).toHaveText(words.typing(annName), { timeout: 3_000 });
      }).toPass({ timeout: 30_000 });
      await shot(bob, `20-${tag}-typing`);
      await ann.locator('form.send button[type=submit]').click();
      await expect(messages(bob)).toHaveCount(1);
      await expect(messages(bob).first().getByTestId('content')).toHaveText('hello there');
      await expect(bob.getByTestId('typing')).toHaveText('');
      await expect(ann.getByTestId('typing')).toHaveText('');
    });

    await test.step('ann sees that bob has read it', async () => {
      await expect(messages(ann).first().getByTestId('read-by')).toHaveAttribute('aria-label', words.readBy(bobName));
      // A sender has read what they sent.
      await expect(messages(bob).first().getByTestId('read-by')).toHaveAttribute('aria-label', words.readBy(annName));
    });

    await test.step('reactions count everyone, and show whose are whose', async () => {
      const first = messages(bob).first();
      await first.hover();
      await first.getByTestId('react').click();
      await bob.getByTestId('emoji-picker').getByTestId('emoji').filter({ hasText: '👍' }).click();
      await expect(bob.getByTestId('emoji-picker')).toHaveCount(0);
      const bobsChip = first.getByTestId('reaction');
      const annsChip = messages(ann).first().getByTestId('reaction');
      await expect(bobsChip).toHaveText('👍 1');
      await expect(bobsChip).toHaveAttribute('aria-pressed', 'true');
      await expect(annsChip).toHaveText('👍 1');
      await expect(annsChip).toHaveAttribute('aria-pressed', 'false');
      await annsChip.click();
      await expect(annsChip).toHaveText('👍 2');
      await expect(annsChip).toHaveAttribute('aria-pressed', 'true');
      await expect(bobsChip).toHaveText('👍 2');
      await expect(bobsChip).toHaveAttribute('aria-pressed', 'true');
      await annsChip.click();
      await expect(annsChip).toHaveAttribute('aria-pressed', 'false');
      await expect(bobsChip).toHaveText('👍 1');
    });

    await test.step('bob answers with a quote', async () => {
      const first = messages(bob).first();
      await first.hover();
      await expect(first.getByTestId('reply')).toHaveText(words.reply);
      await first.getByTestId('reply').click();
      await expect(bob.getByTestId('replying')).toContainText(words.replyingTo(annName));
      await expect(bob.getByTestId('replying').getByTestId('quote')).toContainText('hello there');
      await say(bob, 'hi back');
      await expect(bob.getByTestId('replying')).toHaveCount(0);
      for (const page of [ann, bob]) {
        await expect(messages(page)).toHaveCount(2);
        await expect(messages(page).nth(1).getByTestId('quote')).toContainText('hello there');
        await expect(messages(page).nth(1).getByTestId('content')).toHaveText('hi back');
      }
      await shot(ann, `21-${tag}-reactions-reply`);
    });

    await test.step('ann edits her message; the quote of it follows', async () => {
      const first = messages(ann).first();
      await first.hover();
      await first.getByTestId('edit').click();
      await first.locator('textarea[name=edit]').fill('hello there, edited');
      await first.locator('textarea[name=edit]').press('Enter');
      for (const page of [ann, bob]) {
        await expect(messages(page).first().getByTestId('content')).toHaveText('hello there, edited');
        await expect(messages(page).first().getByTestId('edited')).toContainText(words.edited);
        await expect(messages(page).nth(1).getByTestId('quote')).toContainText('hello there, edited');
      }
      // Only the sender may edit.
      await messages(bob).first().hover();
      await expect(messages(bob).first().getByTestId('edit')).toHaveCount(0);
    });

    await test.step('deleted messages leave a tombstone; the owner deletes others', async () => {
      const first = messages(ann).first();
      await first.hover();
      await first.getByTestId('delete').click();
      await first.getByTestId('delete-confirm').click();
      for (const page of [ann, bob]) {
        await expect(messages(page).first().getByTestId('tombstone')).toHaveText(words.deleted);
        await expect(messages(page).first().getByTestId('reaction')).toHaveCount(0);
        await expect(messages(page).nth(1).getByTestId('quote')).toContainText(words.deleted);
      }
      // Bob, a member, may delete only his own.
      await messages(bob).first().hover();
      await expect(messages(bob).first().getByTestId('delete')).toHaveCount(0);
      const answer = messages(ann).nth(1);
      await answer.hover();
      await answer.getByTestId('delete').click();
      await answer.getByTestId('delete-confirm').click();
      for (const page of [ann, bob]) {
        await expect(messages(page).nth(1).getByTestId('tombstone')).toHaveText(words.deleted);
      }
      await shot(bob, `22-${tag}-deleted`);
    });
  });
}

test('a group is renamed, its roles changed, a member removed and the group handed over', async ({ browser }) => {
  for (const name of ['olive', 'pete', 'quinn']) await server.account(name, passwordOf(name));
  const olive = await signedIn(browser, 'en-US', 'olive');
  const pete = await signedIn(browser, 'en-US', 'pete');
  const quinn = await signedIn(browser, 'en-US', 'quinn');
  const settingsOf = (page: Page) => page.getByTestId('group-settings');
  const member = (page: Page, username: string) => settingsOf(page).getByTestId('member').filter({ hasText: `@${username}` });

  await test.step('olive makes a group, picking people as she types', async () => {
    await olive.getByTestId('new-group').click();
    const form = olive.getByTestId('group-form');
    await form.locator('input[name=name]').fill('Crew');
    for (const [typed, username] of [
      ['pe', 'pete'],
      ['qu', 'quinn'],
    ] as const) {
      await form.locator('input[name=people]').fill(typed);
      await form.getByTestId('suggestion').filter({ hasText: `@${username}` }).click();
    }
    await expect(form.getByTestId('picked')).toHaveText(['pete×', 'quinn×']);
    await form.locator('button[type=submit]').click();
    await expect(olive.locator('.chat-header')).toContainText('3 members');
    // A message puts the group in the others' lists.
    await say(olive, 'welcome, crew');
    await openRoom(pete, 'Crew');
    await openRoom(quinn, 'Crew');
  });

  await test.step('the owner renames it; the others see the new name at once', async () => {
    await olive.getByTestId('settings').click();
    const form = settingsOf(olive).getByTestId('room-form');
    await form.locator('input[name=name]').fill('Crew Two');
    await form.locator('input[name=info]').fill('the renamed crew');
    await form.locator('button[type=submit]').click();
    for (const page of [olive, pete, quinn]) {
      await expect(page.locator('.chat-header h2')).toHaveText('Crew Two');
      await expect(page.locator('.chat-header')).toContainText('the renamed crew');
    }
    await expect(pete.getByTestId('room').filter({ hasText: 'Crew Two' })).toHaveCount(1);
  });

  await test.step('the owner makes pete an admin', async () => {
    await expect(member(olive, 'olive').getByTestId('role')).toHaveText('Owner');
    await member(olive, 'pete').getByTestId('make-admin').click();
    await expect(member(olive, 'pete').getByTestId('role')).toHaveText('Admin');
    await pete.getByTestId('settings').click();
    await expect(member(pete, 'pete').getByTestId('role')).toHaveText('Admin');
    // An admin may remove members, not the owner, and sets no roles.
    await expect(member(pete, 'quinn').getByTestId('remove-member')).toBeVisible();
    await expect(member(pete, 'olive').getByTestId('remove-member')).toHaveCount(0);
    await expect(settingsOf(pete).getByTestId('make-admin')).toHaveCount(0);
    await expect(settingsOf(pete).getByTestId('room-form')).toBeVisible();
    await shot(pete, '23-group-settings');
  });

  await test.step('pete removes quinn, who is told and taken back to the list', async () => {
    await member(pete, 'quinn').getByTestId('remove-member').click();
    await member(pete, 'quinn').getByTestId('remove-member-confirm').click();
    await expect(quinn.getByTestId('notice')).toHaveText('pete removed you from Crew Two.');
    await expect(quinn.getByTestId('chat')).toHaveCount(0);
    for (const page of [olive, pete]) {
      await expect(settingsOf(page).getByTestId('member')).toHaveCount(2);
      await expect(page.locator('.chat-header')).toContainText('2 members');
    }
    await shot(quinn, '24-removed');
  });

  await test.step('olive hands the group over to pete and becomes an admin', async () => {
    await member(olive, 'pete').getByTestId('make-owner').click();
    await member(olive, 'pete').getByTestId('make-owner-confirm').click();
    for (const page of [olive, pete]) {
      await expect(member(page, 'pete').getByTestId('role')).toHaveText('Owner');
      await expect(member(page, 'olive').getByTestId('role')).toHaveText('Admin');
    }
    await expect(settingsOf(olive).getByTestId('make-owner')).toHaveCount(0);
    await expect(member(pete, 'olive').getByTestId('make-member')).toBeVisible();
  });

  await test.step('pete adds quinn back; olive leaves', async () => {
    const adding = settingsOf(pete).getByTestId('add-members-form');
    await adding.locator('input[name=people]').fill('qu');
    await adding.getByTestId('suggestion').filter({ hasText: '@quinn' }).click();
    await adding.locator('button[type=submit]').click();
    await expect(member(olive, 'quinn').getByTestId('role')).toHaveText('Member');
    await settingsOf(olive).getByTestId('leave').click();
    await settingsOf(olive).getByTestId('leave-confirm').click();
    await expect(olive.getByTestId('notice')).toHaveText('You left Crew Two.');
    await expect(olive.getByTestId('room').filter({ hasText: 'Crew Two' })).toHaveCount(0);
    await expect(settingsOf(pete).getByTestId('member')).toHaveCount(2);
    await shot(pete, '25-handed-over');
  });
});
