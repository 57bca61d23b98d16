/**
 * The far end of the loopback link microbenchmark (loopback-link.mjs), in a process of its own as a
 * worker is: a WebSocket server on 127.0.0.1 that decodes each frame with the product's codec, reads
 * its tensor as the product does, and answers with a small acknowledgement. It tells its parent the
 * port over IPC and exits when the parent disconnects.
 */
import { createMsgpackCodec, fromWireTensor } from '@callosum/core';
import { WebSocketServer } from 'ws';

const codec = createMsgpackCodec();
const server = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: false,
  maxPayload: 1 << 30,
});
server.on('connection', (socket) => {
  socket.on('message', (data) => {
    const message = codec.decode(data);
    const values = fromWireTensor(message.tensor, 'float32');
    socket.send(codec.encode({ type: 'ack', values: values.length }));
  });
});
server.on('listening', () => process.send({ port: server.address().port }));
process.on('disconnect', () => {
  server.close();
  process.exit(0);
});
