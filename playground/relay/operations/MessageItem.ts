/**
 * A message as a Relay client reads it: a fragment on Message, refetchable
 * through `node(id:)`. These operations are not part of the web client
 * (urql); they show that relay-compiler accepts the schema
 * (e2e/relay.spec.ts compiles them).
 */
import { graphql } from 'relay-runtime';

export const messageItemFragment = graphql`
  fragment MessageItem_message on Message @refetchable(queryName: "MessageItemRefetchQuery") {
    id
    content
    createdAt
    editedAt
    deletedAt
    cursor
    sender {
      id
      username
      nickname
    }
    reactions {
      emoji
      count
      byViewer
    }
  }
`;
