/** The VIRGO queue's text port (telnet, nc: one request a line), the original's. */
export const QUEUE_PORT = 60000;
/** Its ZeroMQ ROUTER port, next to it. */
export const QUEUE_ZMQ_PORT = 60001;
export const QUEUE_ZMQ_ENDPOINT = `tcp://127.0.0.1:${QUEUE_ZMQ_PORT}`;
