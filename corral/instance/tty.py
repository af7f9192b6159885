"""Terminal helpers shared by exec and console."""
import fcntl
import struct
import termios


def set_winsize(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
