"""Word lists the seed draws from: Vietnamese names, procedures and document types like the document's.

Kept apart from `seed.py` so that the generator reads as logic, not as data. Order matters: the seed
draws by index, so appending keeps earlier seeds' data the same, while reordering changes it.
"""

from __future__ import annotations

# The first unit is the document's own; the next two follow its examples (000.00.12.H55, 000.00.21.H55).
FIRST_UNIT_NUMBERS = (17, 12, 21)

FAMILY_NAMES = (
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
    "Hồ", "Ngô", "Dương", "Lý", "Đoàn", "Đinh", "Lương", "Trịnh", "Hà", "Tạ",
)
MIDDLE_NAMES = (
    "Văn", "Thị", "Hữu", "Đức", "Thành", "Minh", "Ngọc", "Thu", "Quốc", "Xuân", "Thanh", "Trung",
    "Thúy", "Kim", "Mạnh", "Thế",
)
GIVEN_NAMES = (
    "An", "Bình", "Cường", "Dũng", "Hải", "Hạnh", "Hùng", "Hương", "Lan", "Linh", "Long", "Mai",
    "Nam", "Nga", "Phong", "Quân", "Sơn", "Thảo", "Trang", "Tuấn", "Việt", "Yến", "Đức", "Hà",
    "Khánh", "Lộc", "Nhung", "Phượng", "Thắng", "Tú",
)

COMPANY_FORMS = (
    "Công ty TNHH", "Công ty Cổ phần", "Hợp tác xã", "Doanh nghiệp tư nhân", "Công ty TNHH MTV",
)
COMPANY_TRADES = (
    "Thương mại và Dịch vụ", "Xây dựng", "Khoáng sản", "Chè", "Vận tải", "Tư vấn Đầu tư",
    "Cơ khí", "Vật liệu xây dựng", "Nông nghiệp sạch",
)
PLACES = (
    "Thái Hà", "Gia Sàng", "Đồng Hỷ", "Phú Lương", "Đại Từ", "Võ Nhai", "Định Hóa", "Phổ Yên",
    "Sông Công", "Phú Bình", "Tân Cương", "Quang Trung", "Núi Cốc", "Hoàng Văn Thụ",
)
PUBLIC_BODIES = ("UBND xã", "Trường THCS", "Trường Mầm non", "Trạm Y tế xã", "Ban Quản lý dự án huyện")

# (mathutuc, tenthutuc): the first is the document's sample; the rest follow its code format.
PROCEDURES = (
    ("1.005434.000.00.00.H55", "Mua quyền hóa đơn"),
    ("1.005435.000.00.00.H55", "Mua hóa đơn lẻ"),
    ("1.005436.000.00.00.H55", "Đăng ký mã số đơn vị có quan hệ với ngân sách"),
    ("1.005441.000.00.00.H55", "Thẩm tra, phê duyệt quyết toán vốn đầu tư dự án hoàn thành"),
    ("1.005443.000.00.00.H55", "Thẩm định giá tài sản nhà nước"),
    ("1.005450.000.00.00.H55", "Điều chuyển tài sản công"),
    ("2.001219.000.00.00.H55", "Thanh lý tài sản công"),
)

RESULT_CODE = "FILE_TRA_KET_QUA"
RESULT_TITLE = "File trả kết quả"

# The document-type catalog (loại tài liệu), also served by API 5 (danhmucloaitailieu).
DOCUMENT_TYPES = (
    ("000.00.00.G12-KQ5586", "- Các văn bản, giấy tờ khác có liên quan (nếu có): 01 bản sao."),
    (
        "000.00.00.G12-KQ5585",
        "Giấy giới thiệu kèm theo công văn đề nghị mua hóa đơn do người đứng đầu cơ quan ký, đóng dấu: 01 bản chính",
    ),
    ("000.00.00.G12-KQ5584", "Đơn đề nghị mua hóa đơn: 01 bản chính"),
    ("000.00.00.G12-KQ5587", "Bản sao Căn cước công dân của người đến mua hóa đơn: 01 bản sao"),
    ("000.00.00.G12-KQ5590", "Tờ khai đăng ký mã số đơn vị có quan hệ với ngân sách: 01 bản chính"),
    ("000.00.00.G12-KQ5591", "Quyết định thành lập đơn vị: 01 bản sao có chứng thực"),
    ("000.00.00.G12-KQ5592", "Báo cáo quyết toán dự án hoàn thành: 01 bản chính"),
    ("000.00.00.G12-KQ5593", "Biên bản nghiệm thu, bàn giao công trình: 01 bản sao"),
)
CATALOG = DOCUMENT_TYPES + ((RESULT_CODE, RESULT_TITLE),)

FILE_TITLES = (
    "Đơn đề nghị mua hóa đơn",
    "Giấy giới thiệu",
    "Công văn đề nghị",
    "Quyết định thành lập",
    "Căn cước công dân",
    "Biên bản bàn giao",
    "Tờ khai",
    "Báo cáo quyết toán",
    "Hồ sơ kèm theo",
)
RESULT_FILE_TITLES = ("Kết quả giải quyết", "Phiếu trả kết quả", "Quyết định phê duyệt")

# Long enough to cut a 300-character file name from.
LONG_TITLE = (
    "Quyết định về việc phê duyệt quyết toán vốn đầu tư dự án hoàn thành công trình cải tạo, "
    "nâng cấp đường giao thông liên xã thuộc chương trình mục tiêu quốc gia xây dựng nông thôn mới "
    "giai đoạn 2016-2020 trên địa bàn huyện Đại Từ, tỉnh Thái Nguyên kèm theo biên bản nghiệm thu, "
    "bàn giao đưa công trình vào sử dụng và các phụ lục chi tiết "
)

# Extensions served with PDF bytes anyway: the pipeline must notice the content does not match.
MISMATCHED_EXTENSIONS = (".docx", ".jpg", ".png")
