//! The part of an i8042 keyboard controller that guests use to reset the machine.
//!
//! Writing 0xFE (pulse the reset line) to the command port asks for a reset, which this VMM
//! treats as "stop the VM" (exit status 0). Status reads say "no data, input buffer empty", so a
//! guest that waits for the controller before sending the command does not spin forever.

/// Data port.
pub const DATA_PORT: u16 = 0x60;
/// Command/status port.
pub const COMMAND_PORT: u16 = 0x64;
/// The reset command.
pub const CMD_RESET: u8 = 0xfe;

/// What a write to the controller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum I8042Action {
    /// Nothing visible.
    None,
    /// Reset the machine.
    Reset,
}

/// True for the controller's ports.
pub fn claims(port: u16) -> bool {
    port == DATA_PORT || port == COMMAND_PORT
}

/// A read: status 0 (no output, input buffer empty), data 0.
pub fn read(_port: u16, data: &mut [u8]) {
    data.fill(0);
}

/// A write: only the reset command does anything.
pub fn write(port: u16, data: &[u8]) -> I8042Action {
    if port == COMMAND_PORT && data.first() == Some(&CMD_RESET) {
        I8042Action::Reset
    } else {
        I8042Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fe_on_the_command_port_resets() {
        assert_eq!(write(COMMAND_PORT, &[CMD_RESET]), I8042Action::Reset);
        assert_eq!(write(COMMAND_PORT, &[0xd1]), I8042Action::None);
        assert_eq!(write(DATA_PORT, &[CMD_RESET]), I8042Action::None);
        assert_eq!(write(COMMAND_PORT, &[]), I8042Action::None);
        let mut status = [0xffu8];
        read(COMMAND_PORT, &mut status);
        assert_eq!(status, [0]);
    }
}
