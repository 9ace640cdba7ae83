/**
 * Every operation the chat client sends. GraphQL Code Generator reads this
 * file and types each document from ../schema.graphql (see codegen.ts).
 */
import { graphql } from '../gql';

export const UserFields = graphql(`
  fragment UserFields on User {
    identity
    username
    nickname
    sex
    avatar
  }
`);

/** Whether a user is online, and when they were last; null where the
 * viewer may not see it (they share no room, or a block stands between). */
export const PresenceFields = graphql(`
  fragment PresenceFields on Presence {
    online
    lastSeenAt
  }
`);

export const MessageFields = graphql(`
  fragment MessageFields on Message {
    identity
    roomIdentity
    content
    clientId
    createdAt
    cursor
    editedAt
    deletedAt
    sender {
      ...UserFields
    }
    replyTo {
      identity
      content
      deletedAt
      sender {
        ...UserFields
      }
    }
    reactions {
      emoji
      count
      byViewer
    }
  }
`);

export const MembershipFields = graphql(`
  fragment MembershipFields on Membership {
    role
    lastReadCursor
    user {
      ...UserFields
    }
  }
`);

export const RoomFields = graphql(`
  fragment RoomFields on Room {
    identity
    number
    name
    info
    roomType
    memberCount
    unreadCount
    updatedAt
    members {
      ...UserFields
    }
    lastMessage {
      ...MessageFields
    }
  }
`);

export const SendEmailCode = graphql(`
  mutation SendEmailCode($email: String!) {
    sendEmailCode(email: $email) {
      expiresIn
      resendAfter
    }
  }
`);

export const Register = graphql(`
  mutation Register($input: RegisterInput!) {
    register(input: $input) {
      token
      expiresAt
    }
  }
`);

export const Login = graphql(`
  mutation Login($username: String!, $password: String!) {
    login(username: $username, password: $password) {
      token
      expiresAt
    }
  }
`);

/** A new token for the one in use, asked for before that one expires. */
export const RefreshToken = graphql(`
  mutation RefreshToken {
    refreshToken {
      token
      expiresAt
    }
  }
`);

export const ChangePassword = graphql(`
  mutation ChangePassword($oldPassword: String!, $newPassword: String!) {
    changePassword(oldPassword: $oldPassword, newPassword: $newPassword)
  }
`);

export const Me = graphql(`
  query Me {
    me {
      ...UserFields
      email
      emailDigest
    }
  }
`);

export const UpdateProfile = graphql(`
  mutation UpdateProfile($input: UpdateProfileInput!) {
    updateProfile(input: $input) {
      ...UserFields
      email
      emailDigest
    }
  }
`);

export const Rooms = graphql(`
  query Rooms {
    rooms {
      ...RoomFields
    }
  }
`);

export const Friends = graphql(`
  query Friends {
    friends {
      ...UserFields
      presence {
        ...PresenceFields
      }
    }
  }
`);

export const SearchUsers = graphql(`
  query SearchUsers($query: String!) {
    searchUsers(query: $query, first: 20) {
      ...UserFields
    }
  }
`);

export const UserProfile = graphql(`
  query UserProfile($username: String!) {
    userProfile(username: $username) {
      isFriend
      user {
        ...UserFields
        presence {
          ...PresenceFields
        }
      }
      privateRoom {
        identity
      }
    }
  }
`);

export const AddFriend = graphql(`
  mutation AddFriend($username: String!) {
    addFriend(username: $username) {
      identity
    }
  }
`);

export const RemoveFriend = graphql(`
  mutation RemoveFriend($username: String!) {
    removeFriend(username: $username)
  }
`);

export const BlockedUsers = graphql(`
  query BlockedUsers {
    blockedUsers {
      ...UserFields
    }
  }
`);

export const BlockUser = graphql(`
  mutation BlockUser($username: String!) {
    blockUser(username: $username)
  }
`);

export const UnblockUser = graphql(`
  mutation UnblockUser($username: String!) {
    unblockUser(username: $username)
  }
`);

export const CreateGroup = graphql(`
  mutation CreateGroup($input: CreateGroupInput!) {
    createGroup(input: $input) {
      identity
    }
  }
`);

/** Mutations of a room answer only its identity: the open chat shows
 * their effect from the room's events, like everyone else's changes. */
export const AddMembers = graphql(`
  mutation AddMembers($roomIdentity: ID!, $usernames: [String!]!) {
    addMembers(roomIdentity: $roomIdentity, usernames: $usernames) {
      identity
    }
  }
`);

export const LeaveRoom = graphql(`
  mutation LeaveRoom($roomIdentity: ID!) {
    leaveRoom(roomIdentity: $roomIdentity)
  }
`);

export const UpdateRoom = graphql(`
  mutation UpdateRoom($roomIdentity: ID!, $input: UpdateRoomInput!) {
    updateRoom(roomIdentity: $roomIdentity, input: $input) {
      identity
    }
  }
`);

export const RemoveMember = graphql(`
  mutation RemoveMember($roomIdentity: ID!, $username: String!) {
    removeMember(roomIdentity: $roomIdentity, username: $username) {
      identity
    }
  }
`);

export const SetMemberRole = graphql(`
  mutation SetMemberRole($roomIdentity: ID!, $username: String!, $role: MemberRole!) {
    setMemberRole(roomIdentity: $roomIdentity, username: $username, role: $role) {
      identity
    }
  }
`);

export const MarkRoomRead = graphql(`
  mutation MarkRoomRead($roomIdentity: ID!, $upTo: String) {
    markRoomRead(roomIdentity: $roomIdentity, upTo: $upTo) {
      identity
      unreadCount
    }
  }
`);

export const SetTyping = graphql(`
  mutation SetTyping($roomIdentity: ID!, $typing: Boolean!) {
    setTyping(roomIdentity: $roomIdentity, typing: $typing)
  }
`);

/** What the open chat shows besides its messages; read after the history,
 * so that the events from the newest message on cover whatever changed
 * since. */
export const RoomDetails = graphql(`
  query RoomDetails($identity: ID!) {
    room(identity: $identity) {
      identity
      eventCursor
      name
      info
      memberships {
        ...MembershipFields
      }
      typing {
        ...UserFields
      }
    }
  }
`);

/** The members' presence, apart from the room's details: the room's
 * events carry no presence, and it changes on its own subscription. */
export const RoomPresence = graphql(`
  query RoomPresence($identity: ID!) {
    room(identity: $identity) {
      identity
      members {
        identity
        presence {
          ...PresenceFields
        }
      }
    }
  }
`);

/** A page of a room's history: `last` before a cursor (or the newest),
 * or `first` after one. */
export const History = graphql(`
  query History($roomIdentity: ID!, $last: Int, $before: String, $first: Int, $after: String) {
    messages(roomIdentity: $roomIdentity, last: $last, before: $before, first: $first, after: $after) {
      edges {
        node {
          ...MessageFields
        }
      }
      pageInfo {
        hasPreviousPage
        hasNextPage
        startCursor
        endCursor
      }
    }
  }
`);

/** A message as it is now, and `count` messages either side of it: where
 * a room opens at a message found. */
export const HistoryAround = graphql(`
  query HistoryAround($roomIdentity: ID!, $identity: ID!, $cursor: String!, $count: Int!) {
    older: messages(roomIdentity: $roomIdentity, last: $count, before: $cursor) {
      edges {
        node {
          ...MessageFields
        }
      }
      pageInfo {
        hasPreviousPage
      }
    }
    message(identity: $identity) {
      ...MessageFields
    }
    newer: messages(roomIdentity: $roomIdentity, first: $count, after: $cursor) {
      edges {
        node {
          ...MessageFields
        }
      }
      pageInfo {
        hasNextPage
      }
    }
  }
`);

/** Messages with every word of `query`, in all of the viewer's rooms,
 * newest first; `after` is the end cursor of the page before. */
export const SearchMessages = graphql(`
  query SearchMessages($query: String!, $after: String) {
    searchMessages(query: $query, first: 20, after: $after) {
      edges {
        node {
          ...MessageFields
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

export const SendMessage = graphql(`
  mutation SendMessage($roomIdentity: ID!, $content: String!, $clientId: String, $replyTo: ID) {
    sendMessage(roomIdentity: $roomIdentity, content: $content, clientId: $clientId, replyTo: $replyTo) {
      identity
    }
  }
`);

export const EditMessage = graphql(`
  mutation EditMessage($messageIdentity: ID!, $content: String!) {
    editMessage(messageIdentity: $messageIdentity, content: $content) {
      identity
    }
  }
`);

export const DeleteMessage = graphql(`
  mutation DeleteMessage($messageIdentity: ID!) {
    deleteMessage(messageIdentity: $messageIdentity) {
      identity
    }
  }
`);

export const AddReaction = graphql(`
  mutation AddReaction($messageIdentity: ID!, $emoji: String!) {
    addReaction(messageIdentity: $messageIdentity, emoji: $emoji) {
      identity
    }
  }
`);

export const RemoveReaction = graphql(`
  mutation RemoveReaction($messageIdentity: ID!, $emoji: String!) {
    removeReaction(messageIdentity: $messageIdentity, emoji: $emoji) {
      identity
    }
  }
`);

/** Every change to one room, each carrying the state right after it. */
export const RoomEvents = graphql(`
  subscription RoomEvents($roomIdentity: ID!, $after: String) {
    roomEvents(roomIdentity: $roomIdentity, after: $after) {
      __typename
      ... on MessagePosted {
        cursor
        message {
          ...MessageFields
        }
      }
      ... on MessageEdited {
        cursor
        message {
          ...MessageFields
        }
      }
      ... on MessageDeleted {
        cursor
        message {
          ...MessageFields
        }
      }
      ... on ReactionsChanged {
        cursor
        message {
          ...MessageFields
        }
      }
      ... on MemberJoined {
        cursor
        membership {
          ...MembershipFields
        }
      }
      ... on MemberLeft {
        cursor
        user {
          ...UserFields
        }
        removedBy {
          ...UserFields
        }
      }
      ... on MemberRoleChanged {
        cursor
        membership {
          ...MembershipFields
        }
      }
      ... on RoomUpdated {
        cursor
        room {
          name
          info
        }
      }
      ... on ReadReceipt {
        cursor
        membership {
          ...MembershipFields
        }
      }
      ... on Typing {
        typing
        user {
          ...UserFields
        }
      }
    }
  }
`);

export const Inbox = graphql(`
  subscription Inbox {
    inbox {
      ...MessageFields
    }
  }
`);

/** Friends and fellow members coming online and going away. */
export const PresenceChanges = graphql(`
  subscription PresenceChanges {
    presence {
      user {
        identity
      }
      presence {
        ...PresenceFields
      }
    }
  }
`);

export const Lobby = graphql(`
  subscription Lobby {
    lobby {
      content
      createdAt
      sender {
        ...UserFields
      }
    }
  }
`);

export const SendLobbyMessage = graphql(`
  mutation SendLobbyMessage($content: String!) {
    sendLobbyMessage(content: $content) {
      createdAt
    }
  }
`);
