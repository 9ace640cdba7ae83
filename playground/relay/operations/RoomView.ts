/** A room refetched by its global id, with its history and live messages. */
import { graphql } from 'relay-runtime';

export const roomViewQuery = graphql`
  query RoomViewQuery($id: ID!, $roomIdentity: ID!) {
    node(id: $id) {
      id
      ... on Room {
        identity
        name
        roomType
        memberCount
        unreadCount
        members {
          id
          username
        }
      }
    }
    ...RoomHistory_query @arguments(roomIdentity: $roomIdentity)
  }
`;

export const roomViewMessagesSubscription = graphql`
  subscription RoomViewMessagesSubscription($roomIdentity: ID!, $after: String) {
    messages(roomIdentity: $roomIdentity, after: $after) {
      id
      ...MessageItem_message
    }
  }
`;

export const roomViewEventsSubscription = graphql`
  subscription RoomViewEventsSubscription($roomIdentity: ID!, $after: String) {
    roomEvents(roomIdentity: $roomIdentity, after: $after) {
      __typename
      ... on MessagePosted {
        cursor
        message {
          id
          ...MessageItem_message
        }
      }
      ... on MessageEdited {
        message {
          id
          ...MessageItem_message
        }
      }
      ... on RoomUpdated {
        room {
          id
          name
          info
        }
      }
    }
  }
`;
