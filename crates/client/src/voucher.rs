//! Safety vouchers for attachments on the sending device.
