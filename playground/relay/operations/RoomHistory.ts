/** A room's history, paged backwards from the newest the Relay way. */
import { graphql } from 'relay-runtime';

export const roomHistoryFragment = graphql`
  fragment RoomHistory_query on Query
  @refetchable(queryName: "RoomHistoryPaginationQuery")
  @argumentDefinitions(
    roomIdentity: { type: "ID!" }
    count: { type: "Int", defaultValue: 50 }
    cursor: { type: "String" }
  ) {
    messages(roomIdentity: $roomIdentity, last: $count, before: $cursor)
      @connection(key: "RoomHistory_messages") {
      edges {
        node {
          id
          ...MessageItem_message
        }
      }
    }
  }
`;
