/**
 * The client's own words in English and Chinese, picked from the browser's
 * preferred languages. Errors from the server need no table here: it
 * already answers in the language of the request's Accept-Language, which
 * the browser sends from the same preference.
 */
import type { CombinedError } from 'urql';

const en = {
  appName: 'chatroom',
  login: 'Log in',
  logout: 'Log out',
  register: 'Register',
  username: 'Username',
  password: 'Password',
  email: 'Email',
  code: 'Code from the email',
  sendCode: 'Send code',
  codeSent: 'A code is on its way to {email}. It expires in {minutes} minutes.',
  nickname: 'Nickname',
  sex: 'Sex',
  sexUNKNOWN: 'Not said',
  sexMALE: 'Male',
  sexFEMALE: 'Female',
  avatar: 'Avatar URL',
  save: 'Save',
  saved: 'Saved.',
  chats: 'Chats',
  friends: 'Friends',
  lobby: 'Lobby',
  profile: 'Profile',
  noRooms: 'No chats yet. Find a friend or create a group.',
  noMessages: 'No messages yet.',
  pickRoom: 'Pick a chat on the left.',
  send: 'Send',
  typeMessage: 'Write a message…',
  sending: 'sending…',
  failed: 'not sent',
  retry: 'Retry',
  older: 'Load older messages',
  newGroup: 'New group',
  groupName: 'Group name',
  groupInfo: 'About the group',
  membersToAdd: 'Usernames, separated by commas',
  create: 'Create',
  addMembers: 'Add members',
  add: 'Add',
  leave: 'Leave group',
  members: '{count} members',
  searchUsers: 'Search users by name…',
  search: 'Search',
  noUsersFound: 'Nobody found.',
  isFriend: 'Friends',
  notFriend: 'Not friends yet',
  addFriend: 'Add friend',
  removeFriend: 'Remove friend',
  openChat: 'Open chat',
  yourFriends: 'Your friends',
  noFriends: 'No friends yet.',
  online: 'online',
  connecting: 'connecting…',
  offline: 'offline: reconnecting…',
  networkError: 'The server cannot be reached. Check that it runs, then try again.',
  lobbyHint: 'Everyone connected to this server hears the lobby. Nothing here is stored.',
  cancel: 'Cancel',
  you: 'you',
  sessionEnded: 'Your session ended; please sign in again.',
  changePassword: 'Change password',
  oldPassword: 'Current password',
  newPassword: 'New password',
  passwordChanged: 'Password changed. Your other sessions have been signed out.',
};

type Words = typeof en;

const zh: Words = {
  appName: 'chatroom',
  login: '登录',
  logout: '退出登录',
  register: '注册',
  username: '用户名',
  password: '密码',
  email: '邮箱',
  code: '邮件中的验证码',
  sendCode: '发送验证码',
  codeSent: '验证码已发送至 {email}，{minutes} 分钟内有效。',
  nickname: '昵称',
  sex: '性别',
  sexUNKNOWN: '未说明',
  sexMALE: '男',
  sexFEMALE: '女',
  avatar: '头像链接',
  save: '保存',
  saved: '已保存。',
  chats: '聊天',
  friends: '好友',
  lobby: '大厅',
  profile: '个人资料',
  noRooms: '还没有聊天。去找个好友或建个群吧。',
  noMessages: '还没有消息。',
  pickRoom: '从左侧选择一个聊天。',
  send: '发送',
  typeMessage: '输入消息…',
  sending: '发送中…',
  failed: '未发送',
  retry: '重试',
  older: '加载更早的消息',
  newGroup: '新建群聊',
  groupName: '群名称',
  groupInfo: '群简介',
  membersToAdd: '用户名，用逗号分隔',
  create: '创建',
  addMembers: '添加成员',
  add: '添加',
  leave: '退出群聊',
  members: '{count} 位成员',
  searchUsers: '按名字搜索用户…',
  search: '搜索',
  noUsersFound: '没有找到用户。',
  isFriend: '好友',
  notFriend: '还不是好友',
  addFriend: '加为好友',
  removeFriend: '删除好友',
  openChat: '打开聊天',
  yourFriends: '你的好友',
  noFriends: '还没有好友。',
  online: '在线',
  connecting: '连接中…',
  offline: '已断开：正在重连…',
  networkError: '无法连接服务器。请确认它在运行，然后重试。',
  lobbyHint: '连接到本服务器的每个人都能看到大厅消息。这里的消息不会保存。',
  cancel: '取消',
  you: '你',
  sessionEnded: '登录已失效，请重新登录。',
  changePassword: '修改密码',
  oldPassword: '当前密码',
  newPassword: '新密码',
  passwordChanged: '密码已修改，其他设备上的登录已退出。',
};

export const language: 'en' | 'zh' = navigator.languages.some((tag) => tag.toLowerCase().startsWith('zh'))
  ? 'zh'
  : 'en';

const words = language === 'zh' ? zh : en;

export function t(key: keyof Words, values: Record<string, string | number> = {}): string {
  return words[key].replace(/\{(\w+)\}/g, (_, name: string) => String(values[name] ?? ''));
}

/** What to show for a failed operation: the server's own message, or ours
 * when the server could not be reached at all. */
export function describe(error: CombinedError): string {
  const first = error.graphQLErrors[0];
  if (first) return first.message;
  return t('networkError');
}
