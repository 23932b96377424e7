"""Queue messages: their bytes round trip, and a body of the wrong shape is a poison message naming the field."""

from __future__ import annotations

from datetime import date

import pytest

from shared.errors import PoisonMessage
from shared.messages import DossierFetched, DossierStored
from shared.onestop.models import Dossier

DOSSIER = Dossier.model_validate({
    "mahoso": "000.00.17.H55-200917-0013", "madonvi": "000.00.17.H55", "tentochuccanhan": "Nguyễn Văn A",
    "ngaynhan": "17/09/2020", "mathutuc": "1.005434.000.00.00.H55", "tenthutuc": "Thủ tục",
    "file_dinh_kem": [{"matailieu": "000.00.00.G12-KQ5586", "tentailieu": "Bản sao", "ten_file": "file_dinh_kem.pdf",
                       "url_file": "http://motcua.thainguyen.gov.vn/a/2020_10_19_031048885!~!file_dinh_kem.pdf"}],
})


def test_a_message_survives_the_trip_through_bytes():
    message = DossierFetched.of(DOSSIER)
    again = DossierFetched.from_bytes(message.to_bytes())
    assert again == message
    assert again.ngaynhan == date(2020, 9, 17) and again.files[0].ten_file == "file_dinh_kem.pdf"
    assert again.schema_version == 1 and b'"schema_version":1' in message.to_bytes()


@pytest.mark.parametrize("body, where", [
    (b"not json", "body"),
    (b'{"schema_version": 2, "mahoso": "M", "madonvi": "U", "files": []}', "schema_version"),
    (b'{"schema_version": 1, "madonvi": "U", "files": []}', "mahoso"),
    (b'{"schema_version": 1, "mahoso": "M", "madonvi": "U", "files": [{"object_key": "k"}]}', "files"),
])
def test_a_body_of_the_wrong_shape_is_a_poison_message_that_names_the_field(body, where):
    with pytest.raises(PoisonMessage) as caught:
        DossierStored.from_bytes(body)
    assert where in str(caught.value)
