// A partner's Java job, as small as it gets: JSch (Debian's libjsch-java) logs in with a key,
// checks the server's host key against a known_hosts file, and runs SFTP transfers through
// ChannelSftp.put and ChannelSftp.get, the calls such jobs make.
//
// Usage: java JschTransfer HOST PORT USER KEY KNOWN_HOSTS (put LOCAL REMOTE | get REMOTE LOCAL)...
//
// Prints `host_key <type>` once logged in and `ok <op> <path>` after each transfer. The first
// failure ends the run with exit 1 and `error <op> <path>: <status> <server's message>` on
// stderr (exit 2 for a failed login), so that the test sees what a partner's job would log.

import com.jcraft.jsch.ChannelSftp;
import com.jcraft.jsch.JSch;
import com.jcraft.jsch.JSchException;
import com.jcraft.jsch.Session;
import com.jcraft.jsch.SftpException;

public class JschTransfer {
    public static void main(String[] args) {
        if (args.length < 8 || (args.length - 5) % 3 != 0) {
            System.err.println(
                "usage: JschTransfer HOST PORT USER KEY KNOWN_HOSTS (put LOCAL REMOTE | get REMOTE LOCAL)...");
            System.exit(64);
        }
        Session session;
        ChannelSftp sftp;
        try {
            session = login(args[0], Integer.parseInt(args[1]), args[2], args[3], args[4]);
            System.out.println("host_key " + session.getHostKey().getType());
            sftp = (ChannelSftp) session.openChannel("sftp");
            sftp.connect(30_000);
        } catch (JSchException e) {
            System.err.println("error login: " + e.getMessage());
            System.exit(2);
            return;
        }
        int status = 0;
        for (int i = 5; i < args.length && status == 0; i += 3) {
            status = transfer(sftp, args[i], args[i + 1], args[i + 2]);
        }
        sftp.disconnect();
        session.disconnect();
        System.exit(status);
    }

    // Only the given key and the given known_hosts: nothing from ~/.ssh, no prompt, and a host
    // key that is not in the file is refused (StrictHostKeyChecking=yes).
    static Session login(String host, int port, String user, String key, String knownHosts)
            throws JSchException {
        JSch jsch = new JSch();
        jsch.setKnownHosts(knownHosts);
        jsch.addIdentity(key);
        Session session = jsch.getSession(user, host, port);
        session.setConfig("StrictHostKeyChecking", "yes");
        session.setConfig("PreferredAuthentications", "publickey");
        session.connect(30_000);
        return session;
    }

    static int transfer(ChannelSftp sftp, String op, String from, String to) {
        try {
            switch (op) {
                case "put":
                    sftp.put(from, to);
                    break;
                case "get":
                    sftp.get(from, to);
                    break;
                default:
                    System.err.println("error " + op + ": unknown operation (put or get)");
                    return 64;
            }
        } catch (SftpException e) {
            // JSch's id is the SFTP status code; its message is the server's own text.
            String path = op.equals("put") ? to : from;
            System.err.println("error " + op + " " + path + ": " + e.id + " " + e.getMessage());
            return 1;
        }
        System.out.println("ok " + op + " " + (op.equals("put") ? to : from));
        return 0;
    }
}
