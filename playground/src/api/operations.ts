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

export const MessageFields = graphql(`
  fragment MessageFields on Message {
    identity
    roomIdentity
    content
    clientId
    createdAt
    cursor
    sender {
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
    }
  }
`);

export const UpdateProfile = graphql(`
  mutation UpdateProfile($input: UpdateProfileInput!) {
    updateProfile(input: $input) {
      ...UserFields
      email
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

export const CreateGroup = graphql(`
  mutation CreateGroup($input: CreateGroupInput!) {
    createGroup(input: $input) {
      identity
    }
  }
`);

export const AddMembers = graphql(`
  mutation AddMembers($roomIdentity: ID!, $usernames: [String!]!) {
    addMembers(roomIdentity: $roomIdentity, usernames: $usernames) {
      ...RoomFields
    }
  }
`);

export const LeaveRoom = graphql(`
  mutation LeaveRoom($roomIdentity: ID!) {
    leaveRoom(roomIdentity: $roomIdentity)
  }
`);

export const MarkRoomRead = graphql(`
  mutation MarkRoomRead($roomIdentity: ID!) {
    markRoomRead(roomIdentity: $roomIdentity) {
      identity
      unreadCount
    }
  }
`);

export const History = graphql(`
  query History($roomIdentity: ID!, $last: Int!, $before: String) {
    messages(roomIdentity: $roomIdentity, last: $last, before: $before) {
      edges {
        node {
          ...MessageFields
        }
      }
      pageInfo {
        hasPreviousPage
        startCursor
        endCursor
      }
    }
  }
`);

export const SendMessage = graphql(`
  mutation SendMessage($roomIdentity: ID!, $content: String!, $clientId: String) {
    sendMessage(roomIdentity: $roomIdentity, content: $content, clientId: $clientId) {
      ...MessageFields
    }
  }
`);

export const RoomMessages = graphql(`
  subscription RoomMessages($roomIdentity: ID!, $after: String) {
    messages(roomIdentity: $roomIdentity, after: $after) {
      ...MessageFields
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
