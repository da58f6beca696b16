# umqtt.simple for the virtual box. ESP32 builds of MicroPython freeze micropython-lib's
# umqtt.simple and firmware/manifest.py requires it; the WebAssembly port has none, so the
# bridge puts this one on the board's path. It is written here against the same API
# (MQTTClient(client_id, server, port, user, password, keepalive), set_callback,
# set_last_will, connect(clean_session, timeout), publish(topic, msg, retain, qos) that waits
# for the PUBACK, subscribe that waits for the SUBACK, check_msg, wait_msg, ping, disconnect,
# .sock) and speaks MQTT 3.1.1 over the socket stand-in. One difference on purpose: the
# connect timeout also bounds every later blocking read, so a broker that stops answering
# raises OSError(ETIMEDOUT) instead of hanging the box.
import socket
import struct


class MQTTException(Exception):
    pass


class MQTTClient:
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0,
                 ssl=None, ssl_params={}):
        if port == 0:
            port = 8883 if ssl else 1883
        if ssl:
            raise MQTTException("the virtual box has no TLS")
        self.client_id = client_id
        self.sock = None
        self.server = server
        self.port = port
        self.pid = 0
        self.cb = None
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.lw_topic = None
        self.lw_msg = None
        self.lw_qos = 0
        self.lw_retain = False
        self.timeout = None

    def _send_str(self, s):
        if isinstance(s, str):
            s = s.encode()
        self.sock.write(struct.pack("!H", len(s)))
        self.sock.write(s)

    def _read(self, n):
        data = self.sock.read(n)
        if data is None:
            return None
        if len(data) < n:
            raise OSError(-1)  # the broker closed the connection
        return data

    def _recv_len(self):
        n = 0
        sh = 0
        while True:
            b = self._read(1)[0]
            n |= (b & 0x7F) << sh
            if not b & 0x80:
                return n
            sh += 7
            if sh > 21:
                raise MQTTException("malformed remaining length")

    @staticmethod
    def _len(buf, i, n):
        while n > 0x7F:
            buf[i] = (n & 0x7F) | 0x80
            n >>= 7
            i += 1
        buf[i] = n
        return i + 1

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        assert 0 <= qos <= 2
        assert topic
        self.lw_topic = topic
        self.lw_msg = msg
        self.lw_qos = qos
        self.lw_retain = retain

    def connect(self, clean_session=True, timeout=None):
        self.timeout = timeout
        self.sock = socket.socket()
        self.sock.settimeout(timeout)
        addr = socket.getaddrinfo(self.server, self.port)[0][-1]
        self.sock.connect(addr)
        premsg = bytearray(b"\x10\0\0\0\0\0")
        msg = bytearray(b"\0\x04MQTT\x04\x02\0\0")  # variable header: 10 bytes
        sz = 10 + 2 + len(self.client_id)
        msg[7] = clean_session << 1
        if self.user:
            sz += 2 + len(self.user) + 2 + len(self.pswd or "")
            msg[7] |= 0xC0
        if self.keepalive:
            assert self.keepalive < 65536
            msg[8] |= self.keepalive >> 8
            msg[9] |= self.keepalive & 0x00FF
        if self.lw_topic:
            sz += 2 + len(self.lw_topic) + 2 + len(self.lw_msg)
            msg[7] |= 0x4 | (self.lw_qos & 0x1) << 3 | (self.lw_qos & 0x2) << 3
            msg[7] |= self.lw_retain << 5
        i = self._len(premsg, 1, sz)
        self.sock.write(premsg[:i])
        self.sock.write(msg)
        self._send_str(self.client_id)
        if self.lw_topic:
            self._send_str(self.lw_topic)
            self._send_str(self.lw_msg)
        if self.user:
            self._send_str(self.user)
            self._send_str(self.pswd or "")
        resp = self._read(4)
        if resp is None:
            raise OSError(110)
        if resp[0] != 0x20 or resp[1] != 0x02:
            raise MQTTException("not a CONNACK")
        if resp[3] != 0:
            raise MQTTException(resp[3])  # 4: bad user name or password, 5: not authorised
        return resp[2] & 1

    def disconnect(self):
        self.sock.write(b"\xe0\0")
        self.sock.close()

    def ping(self):
        self.sock.write(b"\xc0\0")

    def publish(self, topic, msg, retain=False, qos=0):
        if isinstance(topic, str):
            topic = topic.encode()
        pkt = bytearray(b"\x30\0\0\0\0")
        pkt[0] |= qos << 1 | retain
        sz = 2 + len(topic) + len(msg)
        if qos > 0:
            sz += 2
        assert sz < 2097152
        i = self._len(pkt, 1, sz)
        self.sock.write(pkt[:i])
        self._send_str(topic)
        if qos > 0:
            self.pid += 1
            pid = self.pid
            self.sock.write(struct.pack("!H", pid))
        self.sock.write(msg)
        if qos == 1:
            while True:
                op = self.wait_msg()
                if op == 0x40:
                    sz = self._read(1)
                    assert sz == b"\x02"
                    rcv_pid = self._read(2)
                    rcv_pid = rcv_pid[0] << 8 | rcv_pid[1]
                    if pid == rcv_pid:
                        return
        elif qos == 2:
            raise MQTTException("QoS 2 is not supported")

    def subscribe(self, topic, qos=0):
        assert self.cb is not None, "Subscribe callback is not set"
        if isinstance(topic, str):
            topic = topic.encode()
        pkt = bytearray(b"\x82\0\0\0")
        self.pid += 1
        struct.pack_into("!BH", pkt, 1, 2 + 2 + len(topic) + 1, self.pid)
        self.sock.write(pkt)
        self._send_str(topic)
        self.sock.write(qos.to_bytes(1, "little"))
        while True:
            op = self.wait_msg()
            if op == 0x90:
                resp = self._read(4)
                assert resp[1] == pkt[2] and resp[2] == pkt[3]
                if resp[3] == 0x80:
                    raise MQTTException(resp[3])
                return

    def wait_msg(self):
        """One incoming packet: handles PUBLISH (callback, PUBACK for QoS 1) and returns
        None; for any other packet returns its first byte, its body left to the caller."""
        res = self.sock.read(1)
        if res is None:
            return None
        if res == b"":
            raise OSError(-1)
        self.sock.setblocking(True)  # the rest of the packet is on its way: wait for it
        self.sock.settimeout(self.timeout)
        if res == b"\xd0":  # PINGRESP
            sz = self._read(1)[0]
            assert sz == 0
            return None
        op = res[0]
        if op & 0xF0 != 0x30:
            return op
        sz = self._recv_len()
        topic_len = self._read(2)
        topic_len = (topic_len[0] << 8) | topic_len[1]
        topic = self._read(topic_len)
        sz -= topic_len + 2
        if op & 6:
            pid = self._read(2)
            pid = pid[0] << 8 | pid[1]
            sz -= 2
        msg = self._read(sz) if sz else b""
        self.cb(topic, msg)
        if op & 6 == 2:
            pkt = bytearray(b"\x40\x02\0\0")
            struct.pack_into("!H", pkt, 2, pid)
            self.sock.write(pkt)
        elif op & 6 == 4:
            raise MQTTException("QoS 2 is not supported")
        return op

    def check_msg(self):
        """wait_msg() without blocking: None when nothing is waiting."""
        self.sock.setblocking(False)
        try:
            return self.wait_msg()
        finally:
            self.sock.setblocking(True)
            self.sock.settimeout(self.timeout)
